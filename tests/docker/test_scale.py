"""Scale-out: `SCALE=3 make up` on the running stack, nginx and Prometheus find every replica,
a crashed replica costs no idempotent request, and `make reload` under load fails nothing.

Proven on flask and fastapi: the server variants take the same replicas (x-app-service), but all
of them three times over would be 39 app containers on CI's two cores, so this `up` leaves them
out (VARIANTS empty), which also proves that an `up` stops the variants it no longer selects.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import time

import httpx
import pytest
import websockets

from gateway_common import variants
from tests.docker.harness import DockerStack, figure
from tests.reliability.harness import Load, wait_until

pytestmark = pytest.mark.docker

REPLICAS = 3
APPS = {"flask": "/wsgi", "fastapi": "/asgi"}
MAX_CHAT_SOCKETS = 100
LOAD_PATHS = ["/wsgi/hello", "/asgi/hello", "/wsgi/io?ms=20", "/asgi/io?ms=20"]


@pytest.fixture(scope="module")
def scaled(stack: DockerStack) -> DockerStack:
    started = time.monotonic()
    # Later `make` calls keep the replicas and the selection.
    stack.env.update({"SCALE": str(REPLICAS), variants.SELECTION_ENV: ""})
    up = stack.make("up")
    assert up.returncode == 0, f"SCALE={REPLICAS} make up failed:\n{up.stdout[-4000:]}\n{up.stderr}"
    figure(
        f"`SCALE={REPLICAS} VARIANTS= make up` on the running stack took "
        f"{time.monotonic() - started:.0f} s"
    )
    for service in APPS:
        assert len(stack.replica_hosts(service)) == REPLICAS
    running = {row["Service"] for row in stack.containers() if row["State"] == "running"}
    assert not running & set(variants.EXTRA_NAMES), "a variant left out still runs"
    return stack


def _hosts_answering(stack: DockerStack, prefix: str, requests: int) -> collections.Counter:
    with httpx.Client(base_url=stack.public_url, timeout=10) as client:
        return collections.Counter(
            client.get(f"{prefix}/healthz").json()["host"] for _ in range(requests)
        )


@pytest.mark.parametrize("service", APPS)
def test_requests_spread_over_every_replica(scaled: DockerStack, service: str):
    spread = _hosts_answering(scaled, APPS[service], 60)
    figure(f"{service}: 60 requests at SCALE={REPLICAS} -> per replica {sorted(spread.values())}")
    assert set(spread) == scaled.replica_hosts(service)


def test_prometheus_scrapes_every_replica(scaled: DockerStack):
    started = time.monotonic()
    for job in APPS:
        scaled.wait_for(
            f'count(up{{job="{job}"}} == 1)',
            lambda r: bool(r) and r[0]["value"][1] == str(REPLICAS),
            timeout_s=180,  # bounds a broken discovery only; a refresh is every 5 s
        )
    figure(
        f"Prometheus scraped all {REPLICAS} replicas of each service after "
        f"{time.monotonic() - started:.0f} s"
    )


@pytest.mark.parametrize("service", APPS)
def test_service_series_sum_every_replica(scaled: DockerStack, service: str):
    """One capacity series per service, no `instance` left, and it is the replicas' sum."""
    per_replica = scaled.wait_for(
        f'server_worker_capacity{{service="{service}"}}', lambda r: len(r) == REPLICAS
    )
    expected = sum(float(series["value"][1]) for series in per_replica)
    result = scaled.wait_for(
        f'service:server_worker_capacity:sum{{service="{service}"}}',
        lambda r: len(r) == 1 and float(r[0]["value"][1]) == expected,
    )
    assert "instance" not in result[0]["metric"], result
    figure(f"{service}: capacity at SCALE={REPLICAS} = {expected:g} (summed over replicas)")


def test_a_chat_message_reaches_sockets_on_every_replica(scaled: DockerStack):
    """Redis pub/sub carries the room across workers and replicas alike."""
    room = f"scale{time.time_ns() % 10**8}"
    url = f"{scaled.ws_url}/asgi/ws/chat?room={room}"

    async def chat() -> tuple[dict[str, int], list[dict]]:
        sockets, hosts = [], collections.Counter()
        try:
            # nginx picks a replica per connection from the addresses DNS gave it, in an order
            # that changes from answer to answer: keep opening sockets until each replica holds
            # at least one (bounded, well under the server's limits).
            while len(hosts) < REPLICAS and len(sockets) < MAX_CHAT_SOCKETS:
                socket = await websockets.connect(url)
                sockets.append(socket)
                hosts[json.loads(await asyncio.wait_for(socket.recv(), 10))["host"]] += 1
            await sockets[0].send("across replicas")
            received = [json.loads(await asyncio.wait_for(s.recv(), 10)) for s in sockets]
            return dict(hosts), received
        finally:
            for socket in sockets:
                await socket.close()

    hosts, received = asyncio.run(chat())
    figure(f"chat: {len(received)} sockets on replicas {sorted(hosts.values())}, all received")
    assert set(hosts) == scaled.replica_hosts("fastapi")
    assert all(m["type"] == "message" and m["text"] == "across replicas" for m in received)


def _main_pid(container: str) -> int:
    inspected = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Pid}}", container],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return int(inspected.stdout.strip())


def _state(container: str) -> list[str]:
    """[started at, running, health] of a container."""
    template = "{{.State.StartedAt}} {{.State.Running}} {{.State.Health.Status}}"
    inspected = subprocess.run(
        ["docker", "inspect", "--format", template, container],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return inspected.stdout.split()


def test_a_killed_replica_costs_no_idempotent_request_and_comes_back(scaled: DockerStack):
    victims = {
        service: scaled.compose("ps", "--format", "{{.Name}}", service).split()[-1]
        for service in APPS
    }
    with Load(scaled.public_url, LOAD_PATHS, threads=4, max_duration_s=90) as load:
        time.sleep(3)
        started = {container: _state(container)[0] for container in victims.values()}
        load.mark("kill")
        for container in victims.values():
            os.kill(_main_pid(container), signal.SIGKILL)  # a crash: no graceful shutdown
        for container, before in started.items():
            wait_until(
                lambda c=container, b=before: (
                    _state(c)[0] != b and _state(c)[1:] == ["true", "healthy"]
                ),
                90,
                0.5,
                f"{container} restarted and healthy",
            )
        load.mark("back")
        time.sleep(6)  # longer than nginx keeps a resolved address (valid=5s)
    window = load.all()
    figure(
        f"SIGKILL of {', '.join(victims.values())} under load: {window.describe()}; "
        f"back healthy after {load.marks['back'] - load.marks['kill']:.1f} s"
    )
    assert window.sent > 0
    assert not window.failed, window.describe()
    for service, prefix in APPS.items():
        assert set(_hosts_answering(scaled, prefix, 60)) == scaled.replica_hosts(service)


def test_reload_under_load_fails_no_request(scaled: DockerStack):
    with Load(scaled.public_url, LOAD_PATHS, threads=4, max_duration_s=120) as load:
        time.sleep(2)
        for _ in range(2):
            reloaded = scaled.make("reload", timeout=120)
            assert reloaded.returncode == 0, f"{reloaded.stdout}\n{reloaded.stderr}"
            time.sleep(3)
    window = load.all()
    figure(f"`make reload` twice under load at SCALE={REPLICAS}: {window.describe()}")
    assert window.sent > 0
    assert not window.failed, window.describe()
