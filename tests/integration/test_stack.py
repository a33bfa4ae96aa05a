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

from tests.conftest import StackHandle, stackctl

pytestmark = pytest.mark.integration

SERVICES = {"wsgi": ("flask", "gunicorn"), "asgi": ("fastapi", "uvicorn")}


@pytest.fixture(scope="module")
def client(stack: StackHandle):
    with httpx.Client(base_url=stack.public_url, timeout=30) as http:
        yield http


@pytest.mark.parametrize("prefix", SERVICES)
def test_healthz_through_nginx_names_service_server_and_interface(client, prefix):
    response = client.get(f"/{prefix}/healthz")
    assert response.status_code == 200
    body = response.json()
    service, server = SERVICES[prefix]
    assert (body["service"], body["server"], body["interface"]) == (service, server, prefix)


def test_landing_page_is_served_with_security_headers(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "gateway-lab" in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "server" not in response.headers or "/" not in response.headers["server"]


@pytest.mark.parametrize("prefix", SERVICES)
def test_io_waits_and_reports_what_it_waited(client, prefix):
    response = client.get(f"/{prefix}/io", params={"ms": 120})
    assert response.status_code == 200
    body = response.json()
    assert body["requested_ms"] == 120
    assert body["waited_ms"] >= 119


@pytest.mark.parametrize("prefix", SERVICES)
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
def test_bad_query_parameters_are_a_json_400(client, prefix, path, params, field):
    response = client.get(f"/{prefix}{path}", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["field"] == field
    assert field in error["message"]


@pytest.mark.parametrize("prefix", SERVICES)
def test_echo_accepts_a_valid_document_and_rejects_bad_ones(client, prefix):
    good = client.post(f"/{prefix}/echo", json={"message": "hi", "tags": ["a"]})
    assert good.status_code == 200
    assert good.json()["echo"] == {"message": "hi", "tags": ["a"]}

    malformed = client.post(
        f"/{prefix}/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "malformed_json"

    wrong_shape = client.post(f"/{prefix}/echo", json={"message": 42})
    assert wrong_shape.status_code == 422
    assert wrong_shape.json()["error"]["code"] == "invalid_body"


@pytest.mark.parametrize("prefix", SERVICES)
def test_body_over_the_limit_is_refused_by_nginx_with_json_413(client, prefix):
    response = client.post(
        f"/{prefix}/echo",
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


@pytest.mark.parametrize("prefix", SERVICES)
def test_request_id_is_generated_passed_through_and_logged(stack, client, prefix):
    generated = client.get(f"/{prefix}/hello").headers["x-request-id"]
    assert re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", generated)

    chosen = f"it-{prefix}-{time.time_ns()}"
    response = client.get(f"/{prefix}/hello", headers={"X-Request-ID": chosen})
    assert response.headers["x-request-id"] == chosen
    # Every request is in nginx's access log; the service logs errors (and slow requests).
    refused = f"it-{prefix}-bad-{time.time_ns()}"
    assert client.get(f"/{prefix}/io?ms=abc", headers={"X-Request-ID": refused}).status_code == 400

    service = SERVICES[prefix][0]
    log = stack.logs_dir / f"{service}.log"
    deadline = time.monotonic() + 5
    while refused not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in log.read_text().splitlines() if refused in line)
    logged = json.loads(line[line.index("{") :])
    assert (logged["request_id"], logged["status"]) == (refused, 400)
    access_log = (stack.logs_dir / "nginx-access.log").read_text()
    assert chosen in access_log
    assert refused in access_log


@pytest.mark.parametrize("prefix", SERVICES)
def test_sse_events_arrive_one_by_one_through_nginx(stack, prefix):
    events, interval_ms = 4, 400
    arrivals: list[float] = []
    url = f"{stack.public_url}/{prefix}/stream"
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


def test_websocket_echo_through_nginx(stack: StackHandle):
    async def exchange() -> tuple[str, bytes]:
        async with websockets.connect(f"{stack.ws_url}/asgi/ws/echo") as socket:
            await socket.send("ping")
            text = await asyncio.wait_for(socket.recv(), 5)
            await socket.send(b"\x00\x01binary")
            binary = await asyncio.wait_for(socket.recv(), 5)
            return text, binary

    assert asyncio.run(exchange()) == ("ping", b"\x00\x01binary")


def test_websocket_message_over_the_limit_closes_with_1009(stack: StackHandle):
    async def oversize() -> int | None:
        async with websockets.connect(f"{stack.ws_url}/asgi/ws/echo", max_size=None) as socket:
            await socket.send("x" * (64 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
            return socket.close_code

    assert asyncio.run(oversize()) == 1009


def test_websocket_chat_broadcasts_to_every_socket_in_the_room_across_workers(stack):
    room = f"it{time.time_ns() % 10**8}"
    members = 6  # with 2 workers, several sockets land on each of them

    async def chat() -> list[list[dict]]:
        sockets = [
            await websockets.connect(f"{stack.ws_url}/asgi/ws/chat?room={room}")
            for _ in range(members)
        ]
        outsider = await websockets.connect(f"{stack.ws_url}/asgi/ws/chat?room={room}-other")
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


def test_websocket_chat_refuses_a_bad_room_name(stack: StackHandle):
    async def connect() -> None:
        async with websockets.connect(f"{stack.ws_url}/asgi/ws/chat?room=bad%20room!"):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect())
    assert refused.value.response.status_code == 403


def test_every_prometheus_target_is_up(stack: StackHandle):
    results = stack.wait_for(
        "up", lambda r: len(r) >= 6 and all(s["value"][1] == "1" for s in r), timeout_s=40
    )
    jobs = {series["metric"]["job"] for series in results}
    assert {"prometheus", "flask", "fastapi", "nginx", "node", "redis"} <= jobs


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


def test_second_up_does_not_start_a_second_copy(stack: StackHandle):
    pids_before = {p.name: p.read_text() for p in stack.settings.pids_dir.glob("*.pid")}
    again = stackctl("up")
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    pids_after = {p.name: p.read_text() for p in stack.settings.pids_dir.glob("*.pid")}
    assert pids_after == pids_before
