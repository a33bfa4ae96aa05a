"""The Tornado app beyond the shared HTTP surface: WebSockets, errors, its prefix, its drain.

Every test talks to the real Tornado server (`tornado_server`: a worker on a free loopback port,
in a thread), over HTTP with httpx and over WebSocket with the websockets client.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from service_clients import BROKER_CONNECT_TIMEOUT_S, ServiceClient
from tornado_server import TornadoServer
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.redis_server import RedisServer, running_redis
from tornado_app.settings import load_tornado_settings

WAIT_S = 10.0  # bounds against hanging, not speed requirements
WS_LABELS = {"service": "tornado", "interface": "tornado"}


def ws_connect(server: TornadoServer, path: str, **options: Any) -> ClientConnection:
    return connect(f"{server.ws_url}{path}", proxy=None, open_timeout=WAIT_S, **options)


def close_of(ws: ClientConnection) -> tuple[int | None, str | None]:
    """The close frame the server ends `ws` with (read after any pending message)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=WAIT_S)
    frame = closed.value.rcvd
    return (frame.code, frame.reason) if frame is not None else (None, None)


def eventually(check: Callable[[], bool]) -> bool:
    """Whether `check` becomes true within WAIT_S (for what the server does after answering)."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def sample(name: str, labels: dict[str, str]) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry.get_sample_value(name, labels) or 0.0


# WebSockets: /ws/echo


def test_ws_echo_text_and_binary(tornado_server: TornadoServer) -> None:
    with ws_connect(tornado_server, "/ws/echo") as ws:
        ws.send("hello")
        assert ws.recv(timeout=WAIT_S) == "hello"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=WAIT_S) == b"\x00\x01\xff"


@pytest.mark.parametrize("message", [b"x" * (64 * 1024 + 1), "x" * (64 * 1024 + 1)])
def test_ws_echo_closes_1009_on_oversized_message(
    tornado_server: TornadoServer, message: str | bytes
) -> None:
    with ws_connect(tornado_server, "/ws/echo") as ws:
        ws.send(message)
        assert close_of(ws)[0] == 1009


def test_ws_echo_accepts_exactly_64_kib(tornado_server: TornadoServer) -> None:
    with ws_connect(tornado_server, "/ws/echo") as ws:
        ws.send("x" * (64 * 1024))
        assert len(ws.recv(timeout=WAIT_S)) == 64 * 1024


def test_ws_handshake_carries_the_request_id(tornado_server: TornadoServer) -> None:
    headers = {"X-Request-ID": "ws-id-1"}
    with ws_connect(tornado_server, "/ws/echo", additional_headers=headers) as ws:
        assert ws.response is not None
        assert ws.response.headers["X-Request-ID"] == "ws-id-1"


def test_plain_get_of_a_websocket_route_is_the_fastapi_404(
    fastapi_client: ServiceClient, tornado_client: ServiceClient
) -> None:
    for path in ("/ws/echo", "/ws/chat?room=r"):
        tornado, fastapi = tornado_client.get(path), fastapi_client.get(path)
        assert tornado.status == fastapi.status == 404
        assert tornado.body == fastapi.body


def test_ws_metrics(tornado_server: TornadoServer) -> None:
    base = {**WS_LABELS, "route": "/ws/echo"}
    before_in = sample("websocket_messages_total", {**base, "direction": "in"})
    before_out = sample("websocket_messages_total", {**base, "direction": "out"})
    with ws_connect(tornado_server, "/ws/echo") as ws:
        ws.send("a")
        ws.recv(timeout=WAIT_S)
        assert sample("websocket_connections", base) == 1
        ws.send("b")
        ws.recv(timeout=WAIT_S)
    assert eventually(lambda: sample("websocket_connections", base) == 0)
    assert sample("websocket_messages_total", {**base, "direction": "in"}) == before_in + 2
    assert sample("websocket_messages_total", {**base, "direction": "out"}) == before_out + 2


# WebSockets: /ws/chat


def test_ws_chat_broadcasts_within_a_room_only(tornado_server: TornadoServer) -> None:
    with (
        ws_connect(tornado_server, "/ws/chat?room=lobby") as alice,
        ws_connect(tornado_server, "/ws/chat?room=lobby") as bob,
        ws_connect(tornado_server, "/ws/chat?room=other") as carol,
    ):
        joined = [json.loads(ws.recv(timeout=WAIT_S)) for ws in (alice, bob, carol)]
        assert [set(j) for j in joined] == [{"type", "room", "id", "host"}] * 3
        assert [j["type"] for j in joined] == ["joined"] * 3
        assert [j["room"] for j in joined] == ["lobby", "lobby", "other"]
        alice_id = joined[0]["id"]

        alice.send("hi all")
        for ws in (alice, bob):
            message = json.loads(ws.recv(timeout=WAIT_S))
            assert set(message) == {"type", "room", "from", "text", "sent_at"}
            assert (message["type"], message["room"]) == ("message", "lobby")
            assert (message["from"], message["text"]) == (alice_id, "hi all")
            assert isinstance(message["sent_at"], float)

        # Carol's next message is her own: the lobby message never reached her room.
        carol.send("anyone?")
        assert json.loads(carol.recv(timeout=WAIT_S))["text"] == "anyone?"


@pytest.mark.parametrize("query", ["", "?room=", "?room=has%20space", "?room=" + "x" * 33])
def test_ws_chat_refuses_bad_room_with_the_contract_403(
    tornado_server: TornadoServer, query: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(tornado_server, f"/ws/chat{query}")
    response = refused.value.response
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/json"
    error = json.loads(response.body)["error"]
    assert error["code"] == "invalid_parameter"
    assert error["field"] == "room"
    assert error["message"].startswith("room must match ^[A-Za-z0-9_-]{1,32}$, got ")


@pytest.mark.parametrize(
    ("message", "code"), [(b"\x00", 1003), ("x" * (64 * 1024 + 1), 1009)], ids=["binary", "big"]
)
def test_ws_chat_closes_on_binary_or_oversized_text(
    tornado_server: TornadoServer, message: str | bytes, code: int
) -> None:
    with ws_connect(tornado_server, "/ws/chat?room=r1") as ws:
        ws.recv(timeout=WAIT_S)
        ws.send(message)
        assert close_of(ws)[0] == code


def test_ws_chat_leaving_member_is_removed(tornado_server: TornadoServer) -> None:
    bus = tornado_server.worker.bus
    with ws_connect(tornado_server, "/ws/chat?room=gone") as ws:
        ws.recv(timeout=WAIT_S)
        assert bus.members("gone") == 1
    assert eventually(lambda: bus.members("gone") == 0)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, so stopping it disturbs no other test."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def own_broker_server(own_broker: RedisServer) -> Iterator[TornadoServer]:
    server = TornadoServer(load_tornado_settings(environ={"REDIS_URL": own_broker.url}))
    server.start(BROKER_CONNECT_TIMEOUT_S)
    try:
        yield server
    finally:
        server.stop()


def test_chat_without_broker_closes_1013_and_the_rest_still_works(
    own_broker: RedisServer, own_broker_server: TornadoServer
) -> None:
    server, bus = own_broker_server, own_broker_server.worker.bus
    unavailable = (1013, "chat broker unavailable")
    with ws_connect(server, "/ws/chat?room=outage") as member:
        assert json.loads(member.recv(timeout=WAIT_S))["type"] == "joined"
        own_broker.stop()
        assert close_of(member) == unavailable  # the open socket is told, not left hanging
    assert eventually(lambda: bus.members("outage") == 0)

    with ws_connect(server, "/ws/chat?room=outage") as refused:
        assert close_of(refused) == unavailable  # accepted, then closed at once

    assert httpx.get(f"{server.url}/healthz").status_code == 200
    with ws_connect(server, "/ws/echo") as echo:
        echo.send("still here")
        assert echo.recv(timeout=WAIT_S) == "still here"

    own_broker.start()
    assert server.call(lambda: bus.wait_connected(BROKER_CONNECT_TIMEOUT_S))
    with ws_connect(server, "/ws/chat?room=outage") as back:
        assert json.loads(back.recv(timeout=WAIT_S))["type"] == "joined"
        back.send("recovered")
        assert json.loads(back.recv(timeout=WAIT_S))["text"] == "recovered"


def test_broker_gauge_follows_the_connection(
    own_broker: RedisServer, own_broker_server: TornadoServer
) -> None:
    assert sample("chat_broker_up", WS_LABELS) == 1
    own_broker.stop()
    assert eventually(lambda: not own_broker_server.worker.bus.connected)
    assert sample("chat_broker_up", WS_LABELS) == 0


# HTTP beyond the shared surface


def test_unhandled_error_is_a_contract_500_and_logged(
    tornado_client: ServiceClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(n: int) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("gateway_common.workload.cpu_work", explode)
    with caplog.at_level(logging.ERROR, logger="tornado_app.base"):
        answer = tornado_client.get("/cpu?n=5", headers={"X-Request-ID": "crash-3"})
    assert answer.status == 500
    assert answer.json() == {
        "error": {"status": 500, "code": "internal_error", "message": "internal server error"}
    }
    assert answer.headers["X-Request-ID"] == "crash-3"
    logged = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(logged) == 1
    assert logged[0].fields == {"request_id": "crash-3"}  # type: ignore[attr-defined]
    assert "RuntimeError: boom" in caplog.text


def test_client_errors_are_not_logged_as_failures(
    tornado_client: ServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert tornado_client.get("/io?ms=x").status == 400
        assert tornado_client.get("/nope").status == 404
        assert tornado_client.request("DELETE", "/hello").status == 405
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("path", "status"),
    [("/tornado/hello", 200), ("/tornado/io?ms=1", 200), ("/tornadox/hello", 404)],
)
def test_the_public_prefix_is_served_as_if_cut_off(
    tornado_client: ServiceClient, path: str, status: int
) -> None:
    answer = tornado_client.get(path)
    assert answer.status == status
    if status == 404:
        assert answer.json()["error"]["message"] == f"no route for GET {path}"


def test_no_etag_and_no_304(tornado_client: ServiceClient) -> None:
    first = tornado_client.get("/hello")
    assert "ETag" not in first.headers
    again = tornado_client.get("/hello", headers={"If-None-Match": "*"})
    assert again.status == 200
    assert again.body == first.body


def test_a_client_leaving_a_stream_is_counted_as_499(tornado_server: TornadoServer) -> None:
    route = {**WS_LABELS, "method": "GET", "route": "/stream"}
    before = sample("http_requests_total", {**route, "status": "499"})
    url = f"{tornado_server.url}/stream?events=50&interval_ms=100"
    with httpx.stream("GET", url, timeout=WAIT_S) as response:
        first = next(response.iter_text())
    assert first.startswith("id: 1\nevent: tick\n")
    assert eventually(
        lambda: sample("http_requests_total", {**route, "status": "499"}) == before + 1
    )
    assert sample("http_requests_in_progress", route) == 0
    assert tornado_server.worker.lifecycle.in_flight == 0


def test_a_client_leaving_a_poll_ends_its_wait(tornado_server: TornadoServer) -> None:
    route = {**WS_LABELS, "method": "GET", "route": "/poll"}
    before = sample("http_requests_total", {**route, "status": "499"})
    bus, room = tornado_server.worker.bus, "left-behind"
    request = f"GET /poll?room={room}&timeout_ms=20000 HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(("127.0.0.1", tornado_server.port), timeout=WAIT_S) as client:
        client.sendall(request.encode())
        assert eventually(lambda: bus.members(room) == 1)
    # Long before the 20 s timeout: the wait leaves the room when its client does.
    assert eventually(lambda: bus.members(room) == 0)
    assert eventually(
        lambda: sample("http_requests_total", {**route, "status": "499"}) == before + 1
    )
    assert sample("http_requests_in_progress", route) == 0
    assert tornado_server.worker.lifecycle.in_flight == 0


@pytest.mark.parametrize(
    ("content_type", "status"), [("application/json", 413), ("text/plain", 415)]
)
def test_a_large_refused_body_is_read_to_its_end_before_the_answer(
    tornado_client: ServiceClient, content_type: str, status: int
) -> None:
    # Closing with the body unread would reset the connection: the client could lose its answer.
    for _ in range(3):  # the connection stays usable: the next requests reuse it
        answer = tornado_client.request(
            "POST", "/echo", body=b"x" * (512 * 1024), headers={"Content-Type": content_type}
        )
        assert answer.status == status
    assert tornado_client.get("/hello").status == 200


# Graceful stop (what SIGTERM does in a worker process)


def _in_background(function: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()
    return thread, result


def test_stop_finishes_requests_in_flight_and_closes_sockets_with_1012(
    tornado_server: TornadoServer,
) -> None:
    lifecycle = tornado_server.worker.lifecycle
    with ws_connect(tornado_server, "/ws/echo") as ws, httpx.Client() as http:
        ws.send("before")
        assert ws.recv(timeout=WAIT_S) == "before"
        thread, answers = _in_background(lambda: http.get(f"{tornado_server.url}/io?ms=700"))
        assert eventually(lambda: lifecycle.in_flight == 1)

        assert tornado_server.stop(drain_s=WAIT_S) is True  # nothing was cut off

        thread.join(WAIT_S)
        assert answers[0].status_code == 200
        assert answers[0].json()["requested_ms"] == 700
        assert answers[0].headers["Connection"] == "close"
        assert close_of(ws) == (1012, "server shutting down")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tornado_server.url}/hello")


def test_stop_cuts_off_what_outlives_the_drain(tornado_server: TornadoServer) -> None:
    lifecycle = tornado_server.worker.lifecycle
    thread, answers = _in_background(lambda: _get_or_error(f"{tornado_server.url}/io?ms=5000"))
    assert eventually(lambda: lifecycle.in_flight == 1)
    assert tornado_server.stop(drain_s=0.2) is False
    thread.join(WAIT_S)
    assert isinstance(answers[0], httpx.TransportError)


def _get_or_error(url: str) -> httpx.Response | httpx.TransportError:
    try:
        return httpx.get(url, timeout=WAIT_S)
    except httpx.TransportError as exc:
        return exc
