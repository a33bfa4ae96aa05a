"""Every FastAPI variant's server, started by its registry command: identity, lifespan, metrics
from the process that outlives the workers, and a graceful stop of the whole process group.

The contract itself (routes, WebSockets through nginx) is checked on the running stack by the
integration tests; these cover what each launcher sets up around its server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets

from gateway_common import variants
from tests.server_process import ServerProcess, running_server

FASTAPI_VARIANTS = [v.name for v in variants.VARIANTS if v.framework == "fastapi"]
WAIT_S = 30.0  # bound for conditions polled on a shared machine
IN_FLIGHT = 2
IN_FLIGHT_PATH = "/io?ms=2000"


def _gauge(server: ServerProcess, name: str, **labels: str) -> float:
    total = 0.0
    for line in server.metrics_text().splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("name", FASTAPI_VARIANTS)
def test_serves_as_registered_and_stops_gracefully(
    name: str, tmp_path: Path, redis_url: str
) -> None:
    variant = variants.get(name)
    with running_server(variant, tmp_path, redis_url) as server:
        health = server.get_json("/healthz")
        identity = {k: health[k] for k in ("service", "server", "worker_class", "workers")}
        assert identity == {
            "service": variant.name,
            "server": variant.server,
            "worker_class": variant.worker_class,
            "workers": variant.workers,
        }
        assert _gauge(server, "server_workers", service=name) == variant.workers
        # Every worker ran the lifespan: its chat bus subscribed (the gauge is the live minimum).
        _wait_for(lambda: _gauge(server, "chat_broker_up", service=name) == 1, "the chat bus")

        with concurrent.futures.ThreadPoolExecutor(IN_FLIGHT) as pool:
            answers = [
                pool.submit(httpx.get, server.url + IN_FLIGHT_PATH, timeout=WAIT_S)
                for _ in range(IN_FLIGHT)
            ]
            _wait_for(
                lambda: _gauge(server, "http_requests_in_progress", route="/io") == IN_FLIGHT,
                "the requests to be in flight",
            )
            server.terminate_group()
            statuses = [answer.result().status_code for answer in answers]
        assert statuses == [200] * IN_FLIGHT, server.log()
        assert server.wait() == 0, server.log()


def test_daphne_stop_closes_websockets_with_service_restart(tmp_path: Path, redis_url: str) -> None:
    # Daphne alone would cancel the socket's handler; its launcher closes it as Uvicorn does.
    with running_server(variants.get("fastapi-daphne"), tmp_path, redis_url) as server:

        async def close_code() -> int | None:
            async with websockets.connect(f"{server.ws_url}/ws/echo") as socket:
                await socket.send("ping")
                assert await asyncio.wait_for(socket.recv(), WAIT_S) == "ping"
                server.terminate_group()
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(socket.recv(), WAIT_S)
                return socket.close_code

        assert asyncio.run(close_code()) == 1012
        assert server.wait() == 0, server.log()


def test_daphne_refuses_more_than_one_worker(tmp_path: Path, redis_url: str) -> None:
    server = ServerProcess(variants.get("fastapi-daphne"), tmp_path, redis_url)
    server.env["ASGI_WORKERS"] = "2"
    with pytest.raises(RuntimeError, match="ASGI_WORKERS must be at most 1 for daphne"):
        server.start()
