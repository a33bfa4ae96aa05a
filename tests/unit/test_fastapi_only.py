"""ASGI-only surface: WebSockets, the blocking/threadpool waits, OpenAPI under a prefix."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_clients import BROKER_CONNECT_TIMEOUT_S, ServiceClient, start_fastapi_client
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from fastapi_app.app import create_app
from fastapi_app.settings import load_asgi_settings
from gateway_common import metrics
from tests.redis_server import RedisServer, running_redis


@pytest.mark.parametrize(
    ("path", "mode"),
    [("/io/blocking", "time.sleep"), ("/io/threadpool", "time.sleep (threadpool)")],
)
def test_io_variants(fastapi_client: ServiceClient, path: str, mode: str) -> None:
    answer = fastapi_client.get(f"{path}?ms=10")
    assert answer.status == 200
    body = answer.json()
    assert body["mode"] == mode
    assert body["requested_ms"] == 10
    assert body["waited_ms"] >= 9.0


@pytest.mark.parametrize("path", ["/io/blocking", "/io/threadpool"])
def test_io_variants_validate(fastapi_client: ServiceClient, path: str) -> None:
    answer = fastapi_client.get(f"{path}?ms=oops")
    assert answer.status == 400
    assert answer.json()["error"]["message"] == (
        "ms must be an integer between 0 and 10000, got 'oops'"
    )


@pytest.mark.parametrize("path", ["/io/blocking?ms=1", "/io/threadpool?ms=1", "/ws/echo"])
def test_asgi_only_paths_are_404_on_flask(flask_client: ServiceClient, path: str) -> None:
    assert flask_client.get(path).status == 404


def test_ws_echo_text_and_binary(fastapi_test_client: TestClient) -> None:
    with fastapi_test_client.websocket_connect("/ws/echo") as ws:
        ws.send_text("hello")
        assert ws.receive_text() == "hello"
        ws.send_bytes(b"\x00\x01\xff")
        assert ws.receive_bytes() == b"\x00\x01\xff"


def test_ws_echo_closes_1009_on_oversized_message(fastapi_test_client: TestClient) -> None:
    with fastapi_test_client.websocket_connect("/ws/echo") as ws:
        ws.send_bytes(b"x" * (64 * 1024 + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_bytes()
    assert closed.value.code == 1009


def test_ws_echo_accepts_exactly_64_kib(fastapi_test_client: TestClient) -> None:
    with fastapi_test_client.websocket_connect("/ws/echo") as ws:
        ws.send_text("x" * (64 * 1024))
        assert len(ws.receive_text()) == 64 * 1024


def test_ws_chat_broadcasts_within_a_room_only(fastapi_test_client: TestClient) -> None:
    client = fastapi_test_client
    with (
        client.websocket_connect("/ws/chat?room=lobby") as alice,
        client.websocket_connect("/ws/chat?room=lobby") as bob,
        client.websocket_connect("/ws/chat?room=other") as carol,
    ):
        joined = [ws.receive_json() for ws in (alice, bob, carol)]
        assert [j["type"] for j in joined] == ["joined"] * 3
        assert [j["room"] for j in joined] == ["lobby", "lobby", "other"]
        alice_id = joined[0]["id"]

        alice.send_text("hi all")
        for ws in (alice, bob):
            message = ws.receive_json()
            assert set(message) == {"type", "room", "from", "text", "sent_at"}
            assert message["type"] == "message"
            assert message["room"] == "lobby"
            assert message["from"] == alice_id
            assert message["text"] == "hi all"
            assert isinstance(message["sent_at"], float)

        # Carol's next message is her own: the lobby message never reached her room.
        carol.send_text("anyone?")
        assert carol.receive_json()["text"] == "anyone?"


@pytest.mark.parametrize("query", ["", "?room=", "?room=has%20space", "?room=" + "x" * 33])
def test_ws_chat_refuses_bad_room(fastapi_test_client: TestClient, query: str) -> None:
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        fastapi_test_client.websocket_connect(f"/ws/chat{query}"),
    ):
        pass
    assert refused.value.status_code == 403
    error = refused.value.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["field"] == "room"
    assert error["message"].startswith("room must match ^[A-Za-z0-9_-]{1,32}$, got ")


def test_ws_chat_closes_1003_on_binary(fastapi_test_client: TestClient) -> None:
    with fastapi_test_client.websocket_connect("/ws/chat?room=r1") as ws:
        ws.receive_json()
        ws.send_bytes(b"\x00")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1003


def test_ws_chat_closes_1009_on_oversized_text(fastapi_test_client: TestClient) -> None:
    with fastapi_test_client.websocket_connect("/ws/chat?room=r1") as ws:
        ws.receive_json()
        ws.send_text("x" * (64 * 1024 + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009


def test_ws_chat_leaving_member_is_removed(fastapi_test_client: TestClient) -> None:
    bus = fastapi_test_client.app.state.chat_bus  # type: ignore[attr-defined]
    with fastapi_test_client.websocket_connect("/ws/chat?room=gone") as ws:
        ws.receive_json()
        assert bus.members("gone") == 1
    assert bus.members("gone") == 0


def test_unhandled_error_is_a_contract_500(
    fastapi_client: ServiceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(n: int) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("gateway_common.workload.cpu_work", explode)
    answer = fastapi_client.get("/cpu?n=5", headers={"X-Request-ID": "crash-1"})
    assert answer.status == 500
    assert answer.json() == {
        "error": {"status": 500, "code": "internal_error", "message": "internal server error"}
    }
    assert answer.headers["X-Request-ID"] == "crash-1"


def test_unhandled_error_is_a_contract_500_on_flask(
    flask_client: ServiceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(n: int) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("gateway_common.workload.cpu_work", explode)
    answer = flask_client.get("/cpu?n=5", headers={"X-Request-ID": "crash-2"})
    assert answer.status == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert answer.headers["X-Request-ID"] == "crash-2"


def test_openapi_documents_query_parameters(fastapi_client: ServiceClient) -> None:
    spec = fastapi_client.get("/openapi.json").json()
    parameters = spec["paths"]["/io"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in parameters] == [("ms", "query", False)]
    assert "description" in parameters[0]
    assert {"/stream", "/cpu", "/echo", "/io/blocking", "/io/threadpool"} <= set(spec["paths"])


def test_docs_under_root_path(fastapi_env: dict[str, str]) -> None:
    # nginx strips /asgi; uvicorn passes root_path=/asgi, so the docs page must link
    # /asgi/openapi.json and the spec must name /asgi as its server.
    app = create_app(load_asgi_settings(environ=fastapi_env))
    with TestClient(app, root_path="/asgi") as client:
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "'/asgi/openapi.json'" in docs.text
        spec = client.get("/openapi.json")
        assert spec.status_code == 200
        assert spec.json()["servers"] == [{"url": "/asgi"}]
        hello = client.get("/hello")
        assert hello.json()["service"] == "fastapi"


def test_request_validation_error_uses_contract_shape(fastapi_test_client: TestClient) -> None:
    # Our own parameters never trigger it; a malformed query on a typed route would.
    app = fastapi_test_client.app

    @app.get("/typed-test-only")  # type: ignore[union-attr]
    async def typed(count: int) -> dict[str, int]:
        return {"count": count}

    answer = fastapi_test_client.get("/typed-test-only?count=x")
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["code"] == "invalid_parameter"
    assert body["error"]["field"] == "count"


def test_joined_message_is_json_text(fastapi_test_client: TestClient) -> None:
    with fastapi_test_client.websocket_connect("/ws/chat?room=json") as ws:
        joined = json.loads(ws.receive_text())
    assert set(joined) == {"type", "room", "id", "host"}


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, so stopping it disturbs no other test."""
    with running_redis(tmp_path) as server:
        yield server


def _close_of(ws: Any) -> WebSocketDisconnect:
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_text()
    return closed.value


def test_chat_without_broker_closes_1013_and_the_rest_still_works(
    own_broker: RedisServer,
) -> None:
    client = start_fastapi_client(
        load_asgi_settings(environ={"REDIS_URL": own_broker.url}), raise_server_exceptions=False
    )
    try:
        bus = client.app.state.chat_bus  # type: ignore[attr-defined]
        with client.websocket_connect("/ws/chat?room=outage") as member:
            assert member.receive_json()["type"] == "joined"
            own_broker.stop()
            closed = _close_of(member)  # the open socket is told, not left hanging
        assert (closed.code, closed.reason) == (1013, "chat broker unavailable")
        assert bus.members("outage") == 0

        with client.websocket_connect("/ws/chat?room=outage") as refused:
            closed = _close_of(refused)  # a new handshake is accepted, then closed at once
        assert (closed.code, closed.reason) == (1013, "chat broker unavailable")

        assert client.get("/healthz").status_code == 200
        assert client.get("/hello").status_code == 200
        with client.websocket_connect("/ws/echo") as echo:
            echo.send_text("still here")
            assert echo.receive_text() == "still here"

        own_broker.start()
        assert client.portal.call(bus.wait_connected, BROKER_CONNECT_TIMEOUT_S)
        with client.websocket_connect("/ws/chat?room=outage") as back:
            assert back.receive_json()["type"] == "joined"
            back.send_text("recovered")
            assert back.receive_json()["text"] == "recovered"
    finally:
        client.__exit__(None, None, None)


def test_broker_gauge_follows_the_connection(own_broker: RedisServer) -> None:
    def gauge() -> float | None:
        registry = metrics.aggregate_registry()
        return registry.get_sample_value(
            "chat_broker_up", {"service": "fastapi", "interface": "asgi"}
        )

    client = start_fastapi_client(load_asgi_settings(environ={"REDIS_URL": own_broker.url}))
    try:
        bus = client.app.state.chat_bus  # type: ignore[attr-defined]
        assert gauge() == 1
        own_broker.stop()
        deadline = time.monotonic() + BROKER_CONNECT_TIMEOUT_S
        while bus.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gauge() == 0
    finally:
        client.__exit__(None, None, None)
