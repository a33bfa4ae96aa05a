"""The running native stack, end to end through nginx's public port."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import time

import httpx
import pytest
import websockets

from gateway_common import variants
from gateway_common.variants import Variant
from tests.conftest import TEST_VARIANTS, StackHandle, stackctl

pytestmark = pytest.mark.integration

# The contract holds on every variant the test stack runs, each under its own prefix.
each_variant = pytest.mark.parametrize("variant", TEST_VARIANTS, ids=lambda v: v.name)
WEBSOCKET_VARIANTS = [variant for variant in TEST_VARIANTS if variant.websockets]
each_websocket_variant = pytest.mark.parametrize(
    "variant", WEBSOCKET_VARIANTS, ids=lambda v: v.name
)


@pytest.fixture(scope="module")
def client(stack: StackHandle):
    with httpx.Client(base_url=stack.public_url, timeout=30) as http:
        yield http


@each_variant
def test_healthz_through_nginx_names_the_variant_as_registered(client, variant: Variant):
    response = client.get(f"{variant.prefix}/healthz")
    assert response.status_code == 200
    body = response.json()
    identity = {key: body[key] for key in ("service", "framework", "server", "interface")}
    assert identity == {
        "service": variant.name,
        "framework": variant.framework,
        "server": variant.server,
        "interface": variant.interface,
    }
    assert (body["worker_class"], body["workers"], body["threads"]) == (
        variant.worker_class,
        variant.workers,
        variant.threads,
    )


def test_variants_json_lists_every_running_variant_as_healthz_describes_it(client):
    listed = client.get("/variants.json")
    assert listed.status_code == 200
    assert listed.headers["content-type"].startswith("application/json")
    entries = {entry["name"]: entry for entry in listed.json()["variants"]}
    assert list(entries) == [variant.name for variant in TEST_VARIANTS]
    for name, entry in entries.items():
        variant = variants.get(name)
        assert entry["prefix"] == variant.prefix + "/"
        assert entry["capacity"] == variant.capacity
        health = client.get(f"{entry['prefix']}healthz").json()
        for key in ("interface", "framework", "server", "worker_class", "workers", "threads"):
            assert entry[key] == health[key], (name, key)


def test_a_variant_prefix_without_slash_redirects_to_its_healthz(client):
    for variant in TEST_VARIANTS:
        response = client.get(variant.prefix)
        assert response.status_code == 308
        assert response.headers["location"].endswith(f"{variant.prefix}/healthz")


def test_landing_page_is_served_with_security_headers(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "gateway-lab" in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers or "/" not in response.headers["server"]


@each_variant
def test_io_waits_and_reports_what_it_waited(client, variant: Variant):
    response = client.get(f"{variant.prefix}/io", params={"ms": 120})
    assert response.status_code == 200
    body = response.json()
    assert body["requested_ms"] == 120
    assert body["waited_ms"] >= 119


@each_variant
@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/io", {}, "ms"),
        ("/io", {"ms": "abc"}, "ms"),
        ("/io", {"ms": "-1"}, "ms"),
        ("/io", {"ms": "10001"}, "ms"),
        ("/cpu", {"n": "0"}, "n"),
        ("/cpu", {"n": "1e9"}, "n"),
        ("/stream", {"events": "5", "interval_ms": "99999"}, "interval_ms"),
    ],
)
def test_bad_query_parameters_are_a_json_400(client, variant: Variant, path, params, field):
    response = client.get(f"{variant.prefix}{path}", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["field"] == field
    assert field in error["message"]


@each_variant
def test_echo_accepts_a_valid_document_and_rejects_bad_ones(client, variant: Variant):
    prefix = variant.prefix
    good = client.post(f"{prefix}/echo", json={"message": "hi", "tags": ["a"]})
    assert good.status_code == 200
    assert good.json()["echo"] == {"message": "hi", "tags": ["a"]}

    malformed = client.post(
        f"{prefix}/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"

    wrong_shape = client.post(f"{prefix}/echo", json={"message": 42})
    assert wrong_shape.status_code == 422
    assert wrong_shape.json()["error"]["code"] == "invalid_body"


@each_variant
def test_body_over_the_limit_is_refused_by_nginx_with_json_413(client, variant: Variant):
    response = client.post(
        f"{variant.prefix}/echo",
        content=b"x" * (65 * 1024),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "path", ["/wsgi/metrics", "/asgi/metrics", "/metrics", "/stub_status", "/asgi//metrics"]
)
def test_internal_endpoints_are_not_reachable_on_the_public_port(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert "http_requests_total" not in response.text
    assert "Active connections" not in response.text


def test_internal_endpoints_answer_on_their_own_ports(stack: StackHandle):
    assert "http_requests_total" in httpx.get(stack.wsgi_metrics_url).text
    assert "http_requests_total" in httpx.get(stack.asgi_metrics_url).text
    assert "Active connections" in httpx.get(stack.nginx_status_url).text


@each_variant
def test_unknown_paths_and_methods_are_json_errors(client, variant: Variant):
    missing = client.get(f"{variant.prefix}/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong_method = client.delete(f"{variant.prefix}/hello")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


@each_variant
def test_request_id_is_generated_passed_through_and_logged(stack, client, variant: Variant):
    prefix = variant.prefix
    generated = client.get(f"{prefix}/hello").headers["x-request-id"]
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", generated)

    chosen = f"it-{variant.name}-{time.time_ns()}"
    response = client.get(f"{prefix}/hello", headers={"X-Request-ID": chosen})
    assert response.headers["x-request-id"] == chosen
    # Every request is in nginx's access log; the service logs errors (and slow requests).
    refused = f"it-{variant.name}-bad-{time.time_ns()}"
    assert client.get(f"{prefix}/io?ms=abc", headers={"X-Request-ID": refused}).status_code == 400

    log = stack.logs_dir / f"{variant.name}.log"
    deadline = time.monotonic() + 5
    while refused not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in log.read_text().splitlines() if refused in line)
    logged = json.loads(line[line.index("{") :])
    assert (logged["request_id"], logged["status"]) == (refused, 400)
    access_log = (stack.logs_dir / "nginx-access.log").read_text()
    assert chosen in access_log
    assert refused in access_log


@each_variant
def test_sse_events_arrive_one_by_one_through_nginx(stack, variant: Variant):
    events, interval_ms = 4, 400
    arrivals: list[float] = []
    url = f"{stack.public_url}{variant.prefix}/stream"
    start = time.monotonic()
    with httpx.stream(
        "GET", url, params={"events": events, "interval_ms": interval_ms}, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: tick"):
                arrivals.append(time.monotonic() - start)
    assert len(arrivals) == events
    # Buffered by the proxy, every event would land together at the end of the stream.
    spread = arrivals[-1] - arrivals[0]
    assert spread >= (events - 1) * interval_ms / 1000 * 0.5, arrivals


@each_websocket_variant
def test_websocket_echo_through_nginx(stack: StackHandle, variant: Variant):
    async def exchange() -> tuple[str, bytes]:
        async with websockets.connect(f"{stack.ws_url}{variant.prefix}/ws/echo") as socket:
            await socket.send("ping")
            text = await asyncio.wait_for(socket.recv(), 5)
            await socket.send(b"\x00\x01binary")
            binary = await asyncio.wait_for(socket.recv(), 5)
            return text, binary

    assert asyncio.run(exchange()) == ("ping", b"\x00\x01binary")


@each_websocket_variant
def test_websocket_message_over_the_limit_closes_with_1009(stack: StackHandle, variant: Variant):
    url = f"{stack.ws_url}{variant.prefix}/ws/echo"

    async def oversize() -> int | None:
        async with websockets.connect(url, max_size=None) as socket:
            await socket.send("x" * (64 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
            return socket.close_code

    assert asyncio.run(oversize()) == 1009


@each_websocket_variant
def test_websocket_chat_broadcasts_to_every_socket_in_the_room_across_workers(
    stack, variant: Variant
):
    room = f"it{time.time_ns() % 10**8}"
    members = 6  # with 2 workers, several sockets land on each of them
    chat_url = f"{stack.ws_url}{variant.prefix}/ws/chat"

    async def chat() -> list[list[dict]]:
        sockets = [await websockets.connect(f"{chat_url}?room={room}") for _ in range(members)]
        outsider = await websockets.connect(f"{chat_url}?room={room}-other")
        try:
            for socket in [*sockets, outsider]:
                joined = json.loads(await asyncio.wait_for(socket.recv(), 5))
                assert joined["type"] == "joined"
            await sockets[0].send("hello room")
            received = []
            for socket in sockets:
                message = json.loads(await asyncio.wait_for(socket.recv(), 5))
                received.append(message)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(outsider.recv(), 0.5)
            return received
        finally:
            for socket in [*sockets, outsider]:
                await socket.close()

    received = asyncio.run(chat())
    assert all(m["type"] == "message" and m["text"] == "hello room" for m in received)
    assert all(m["room"] == room for m in received)


@each_websocket_variant
def test_websocket_chat_refuses_a_bad_room_name(stack: StackHandle, variant: Variant):
    async def connect() -> None:
        async with websockets.connect(f"{stack.ws_url}{variant.prefix}/ws/chat?room=bad%20room!"):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect())
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "variant", [v for v in TEST_VARIANTS if not v.websockets], ids=lambda v: v.name
)
def test_a_variant_without_websockets_refuses_the_handshake_with_a_json_error(
    stack: StackHandle, variant: Variant
):
    async def connect() -> None:
        async with websockets.connect(f"{stack.ws_url}{variant.prefix}/ws/echo"):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect())
    response = refused.value.response
    assert response.status_code in (404, 501)
    assert json.loads(response.body)["error"]["status"] == response.status_code


def test_every_prometheus_target_is_up(stack: StackHandle):
    results = stack.wait_for(
        "up", lambda r: len(r) >= 6 and all(s["value"][1] == "1" for s in r), timeout_s=40
    )
    jobs = {series["metric"]["job"] for series in results}
    assert {"prometheus", "flask", "fastapi", "nginx", "node", "redis"} <= jobs
    extra = [variant for variant in TEST_VARIANTS if not variant.default]
    if extra:
        scraped = stack.wait_for(
            'up{job="variants"}',
            lambda r: len(r) == len(extra) and all(s["value"][1] == "1" for s in r),
            timeout_s=40,
        )
        assert len(scraped) == len(extra)


def test_chat_broker_is_up_and_watched(stack: StackHandle):
    # The exporter reaches Redis, and every uvicorn worker is subscribed to it.
    redis_up = stack.wait_for("redis_up", lambda r: len(r) == 1 and r[0]["value"][1] == "1")
    assert redis_up[0]["metric"]["job"] == "redis"
    stack.wait_for(
        'chat_broker_up{job="fastapi"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1"
    )
    patterns = stack.wait_for("redis_pubsub_patterns", lambda r: len(r) == 1)
    assert patterns[0]["value"][1] == "1"  # one pattern, chat:*, shared by the workers


def _counter(metrics_text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_from_several_gunicorn_workers_are_summed(stack: StackHandle, client):
    labels = {"route": "/healthz", "service": "flask", "status": "200"}
    before = _counter(httpx.get(stack.wsgi_metrics_url).text, "http_requests_total", **labels)
    calls = 60
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        bodies = list(pool.map(lambda _: client.get("/wsgi/healthz").json(), range(calls)))
    pids = {body["pid"] for body in bodies}
    assert len(pids) >= 2, f"every request went to one worker ({pids}); the check needs two"
    after = _counter(httpx.get(stack.wsgi_metrics_url).text, "http_requests_total", **labels)
    assert after - before == calls


@each_variant
def test_every_request_to_a_variant_is_counted_under_its_own_name(stack, client, variant):
    metrics_url = stack.settings.url(variant.metrics_port_name, "/metrics")
    labels = {"service": variant.name, "route": "/hello", "status": "200"}
    before = _counter(httpx.get(metrics_url).text, "http_requests_total", **labels)
    calls = 24
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda _: client.get(f"{variant.prefix}/hello").status_code, range(calls))
        )
    assert statuses == [200] * calls
    # A WSGI request is counted once its response is closed, which may follow the answer by a
    # moment: wait for the last count (bounded), never accept more or fewer.
    deadline = time.monotonic() + 10
    after = _counter(httpx.get(metrics_url).text, "http_requests_total", **labels)
    while after - before < calls and time.monotonic() < deadline:
        time.sleep(0.1)
        after = _counter(httpx.get(metrics_url).text, "http_requests_total", **labels)
    assert after - before == calls
    capacity = _counter(httpx.get(metrics_url).text, "server_worker_capacity")
    assert capacity == (variant.capacity or variant.workers)


def test_second_up_does_not_start_a_second_copy(stack: StackHandle):
    pids_before = {p.name: p.read_text() for p in stack.settings.pids_dir.glob("*.pid")}
    again = stackctl("up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    pids_after = {p.name: p.read_text() for p in stack.settings.pids_dir.glob("*.pid")}
    assert pids_after == pids_before
