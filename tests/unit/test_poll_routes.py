"""`GET`/`POST /poll` on every service that serves it (docs/architecture.md, "HTTP surface"):
the contract's bounds and errors, 204 at the timeout, 200 with the next message, and delivery
between pollers and `/ws/chat` sockets, all through the session's real redis-server.

A message is published only once the poll is waiting (subscribed to Redis on Flask and Django
under WSGI, a member of the chat bus on FastAPI, Tornado and Django under ASGI): pub/sub keeps no
history, so earlier would be lost by design.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from redis import Redis
from service_clients import BROKER_CONNECT_TIMEOUT_S, Answer, ServiceClient, start_fastapi_client
from tornado_server import TornadoServer
from werkzeug.test import Client as WsgiClient

from django_app.app import create_asgi_app as create_django_asgi_app
from django_app.app import create_wsgi_app as create_django_wsgi_app
from django_app.settings_env import ASGI, WSGI, load_django_settings
from fastapi_app.settings import load_asgi_settings
from flask_app.app import create_app as create_flask_app
from flask_app.settings import load_wsgi_settings
from gateway_common.chat_bus import CHANNEL_PREFIX
from tests.redis_server import RedisServer, running_redis
from tornado_app.settings import load_tornado_settings

# Bounds against hanging on a shared machine, never speed requirements.
READY_TIMEOUT_S = 10.0
LONG_WAIT_MS = 20_000
MESSAGE_KEYS = ["type", "room", "from", "text", "sent_at"]


# The services that serve /poll so far; others add it through gateway_common.long_poll, and
# their name here.
POLL_SERVICES = ["flask", "fastapi", "tornado", "django_gunicorn", "django_uvicorn"]


@pytest.fixture(params=POLL_SERVICES)
def client(request: pytest.FixtureRequest) -> ServiceClient:
    """Each test using it runs against every service that serves /poll."""
    return request.getfixturevalue(f"{request.param}_client")


def new_room() -> str:
    return "t" + uuid.uuid4().hex[:12]


def assert_error(answer: Answer, status: int, code: str, message: str, field: str | None) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    expected = {"status": status, "code": code, "message": message}
    if field is not None:
        expected["field"] = field
    assert answer.json() == {"error": expected}


def eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def waiting_polls(client: ServiceClient, room: str, redis_url: str) -> Callable[[], int]:
    """How many polls of `client`'s service wait in `room` (plus, where the service runs a chat
    bus, its sockets)."""
    bus = client.chat_bus
    if bus is None:  # Flask, Django under WSGI: each wait is a Redis subscription of its own

        def subscribed() -> int:
            with Redis.from_url(redis_url) as redis:
                return int(redis.pubsub_numsub(CHANNEL_PREFIX + room)[0][1])

        return subscribed
    return lambda: bus.members(room)


def start_poll(
    pool: concurrent.futures.Executor, client: ServiceClient, room: str, redis_url: str
) -> concurrent.futures.Future[Answer]:
    """A `GET /poll` running in `pool`, returned once it waits."""
    count = waiting_polls(client, room, redis_url)
    before = count()
    poll = pool.submit(client.get, f"/poll?room={room}&timeout_ms={LONG_WAIT_MS}")
    eventually(lambda: count() == before + 1 or poll.done(), "the poll waits")
    return poll


def post(client: ServiceClient, room: str, text: str) -> Answer:
    return client.post_json(f"/poll?room={room}", {"text": text})


def gauge(name: str, labels: dict[str, str]) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- bounds and errors


ROOM_RULE = "room must match ^[A-Za-z0-9_-]{1,32}$, got "


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("?timeout_ms=0", "room", ROOM_RULE + "none"),
        ("?room=&timeout_ms=0", "room", ROOM_RULE + "''"),
        ("?room=a%20b&timeout_ms=0", "room", ROOM_RULE + "'a b'"),
        ("?room=" + "x" * 33 + "&timeout_ms=0", "room", ROOM_RULE + "'" + "x" * 33 + "'"),
        ("?room=a&room=b&timeout_ms=0", "room", ROOM_RULE + "repeated"),
        ("?room=r", "timeout_ms", "timeout_ms is required"),
        (
            "?room=r&timeout_ms=-1",
            "timeout_ms",
            "timeout_ms must be an integer between 0 and 30000, got '-1'",
        ),
        (
            "?room=r&timeout_ms=30001",
            "timeout_ms",
            "timeout_ms must be an integer between 0 and 30000, got '30001'",
        ),
        (
            "?room=r&timeout_ms=1.5",
            "timeout_ms",
            "timeout_ms must be an integer between 0 and 30000, got '1.5'",
        ),
        ("?room=r&timeout_ms=1&timeout_ms=2", "timeout_ms", "timeout_ms must be given once"),
        ("?room=bad!&timeout_ms=x", "room", ROOM_RULE + "'bad!'"),  # the room is checked first
    ],
)
def test_poll_invalid_query(client: ServiceClient, query: str, field: str, message: str) -> None:
    assert_error(client.get(f"/poll{query}"), 400, "invalid_parameter", message, field)


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        (["text"], None, "body must be a JSON object"),
        ({}, "text", "text is required"),
        ({"text": ""}, "text", "text must be a string of 1 to 10000 characters"),
        ({"text": "x" * 10_001}, "text", "text must be a string of 1 to 10000 characters"),
        ({"text": 5}, "text", "text must be a string of 1 to 10000 characters"),
        ({"text": "x", "from": "me"}, "from", "unknown field 'from'"),
    ],
)
def test_poll_publish_invalid_body(
    client: ServiceClient, document: object, field: str | None, message: str
) -> None:
    assert_error(client.post_json("/poll?room=r", document), 422, "invalid_body", message, field)


def test_poll_publish_bad_room_media_type_size_and_json(client: ServiceClient) -> None:
    answer = client.post_json("/poll?room=no%20room", {"text": "x"})
    assert_error(answer, 400, "invalid_parameter", ROOM_RULE + "'no room'", "room")
    answer = client.post_json("/poll", {"text": "x"})
    assert_error(answer, 400, "invalid_parameter", ROOM_RULE + "none", "room")
    answer = client.request("POST", "/poll?room=r", body=b'{"text":"x"}')
    assert_error(
        answer,
        415,
        "unsupported_media_type",
        "Content-Type must be application/json, got none",
        None,
    )
    huge = b'{"text": "' + b"a" * (64 * 1024) + b'"}'
    answer = client.request(
        "POST", "/poll?room=r", body=huge, headers={"Content-Type": "application/json"}
    )
    assert_error(answer, 413, "payload_too_large", "request body must be at most 65536 bytes", None)
    answer = client.request(
        "POST", "/poll?room=r", body=b'{"text": NaN}', headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "malformed_json"


def test_poll_methods(client: ServiceClient) -> None:
    answer = client.request("PUT", "/poll?room=r")
    assert_error(answer, 405, "method_not_allowed", "method PUT is not allowed for /poll", None)
    # (Starlette names only the first matching route's methods, GET, in Allow.)
    assert "GET" in answer.headers["Allow"]


# --------------------------------------------------------------------------- waits and delivery


def test_poll_answers_204_at_the_timeout(client: ServiceClient) -> None:
    answer = client.get(f"/poll?room={new_room()}&timeout_ms=0", headers={"X-Request-ID": "p-1"})
    assert answer.status == 204
    assert answer.body == b""
    assert "Content-Type" not in answer.headers
    assert "Content-Length" not in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Request-ID"] == "p-1"
    assert client.get(f"/poll?room={new_room()}&timeout_ms=50").status == 204


def test_a_posted_message_answers_a_waiting_poll(client: ServiceClient, redis_url: str) -> None:
    room = new_room()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = start_poll(pool, client, room, redis_url)
        posted = post(client, room, "héllo")
        got = poll.result(timeout=READY_TIMEOUT_S)
    assert posted.status == 202
    assert posted.headers["Content-Type"] == "application/json"
    document = posted.json()
    assert list(document) == MESSAGE_KEYS
    assert (document["type"], document["room"], document["text"]) == ("message", room, "héllo")
    assert len(document["from"]) == 12
    assert isinstance(document["sent_at"], float)
    # The poller gets the document as it was published, byte for byte.
    assert got.status == 200
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Cache-Control"] == "no-store"
    assert got.body == posted.body


@pytest.mark.parametrize("poller", POLL_SERVICES)
@pytest.mark.parametrize("poster", POLL_SERVICES)
def test_a_message_posted_on_one_service_reaches_a_poll_on_either(
    request: pytest.FixtureRequest, redis_url: str, poller: str, poster: str
) -> None:
    polling = request.getfixturevalue(f"{poller}_client")
    posting = request.getfixturevalue(f"{poster}_client")
    room = new_room()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = start_poll(pool, polling, room, redis_url)
        posted = post(posting, room, f"from {poster}")
        assert poll.result(timeout=READY_TIMEOUT_S).body == posted.body


def test_a_poll_in_another_room_is_not_woken(client: ServiceClient, redis_url: str) -> None:
    room = new_room()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = start_poll(pool, client, room, redis_url)
        assert post(client, room + "-other", "elsewhere").status == 202
        posted = post(client, room, "here")
        assert poll.result(timeout=READY_TIMEOUT_S).json()["text"] == posted.json()["text"]


@pytest.mark.parametrize("poller", POLL_SERVICES)
def test_a_chat_socket_message_wakes_a_poll(
    request: pytest.FixtureRequest,
    fastapi_test_client: TestClient,
    redis_url: str,
    poller: str,
) -> None:
    polling = request.getfixturevalue(f"{poller}_client")
    room = new_room()
    with (
        fastapi_test_client.websocket_connect(f"/ws/chat?room={room}") as socket,
        concurrent.futures.ThreadPoolExecutor(1) as pool,
    ):
        joined = socket.receive_json()
        poll = start_poll(pool, polling, room, redis_url)
        socket.send_text("from a socket")
        broadcast = socket.receive_json()  # the socket's own copy
        got = poll.result(timeout=READY_TIMEOUT_S)
    assert got.status == 200
    assert got.json() == broadcast
    assert (broadcast["from"], broadcast["text"]) == (joined["id"], "from a socket")


@pytest.mark.parametrize("poster", POLL_SERVICES)
def test_a_posted_message_reaches_chat_sockets(
    request: pytest.FixtureRequest, fastapi_test_client: TestClient, poster: str
) -> None:
    posting = request.getfixturevalue(f"{poster}_client")
    room = new_room()
    with fastapi_test_client.websocket_connect(f"/ws/chat?room={room}") as socket:
        socket.receive_json()  # joined: the socket is a member of the room from here on
        posted = post(posting, room, "to the sockets")
        assert socket.receive_text() == posted.text


# --------------------------------------------------------------------------- metrics


def test_a_waiting_poll_is_a_request_in_progress(client: ServiceClient, redis_url: str) -> None:
    interface = client.get("/healthz").json()["interface"]
    route = {"service": client.service, "interface": interface, "method": "GET", "route": "/poll"}
    answered = {**route, "status": "200"}
    before = gauge("http_requests_total", answered)
    room = new_room()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        poll = start_poll(pool, client, room, redis_url)
        # The wait is a request in progress (on Flask it holds a sync worker meanwhile).
        assert gauge("http_requests_in_progress", route) == 1
        post(client, room, "done waiting")
        assert poll.result(timeout=READY_TIMEOUT_S).status == 200
    assert gauge("http_requests_in_progress", route) == 0
    assert gauge("http_requests_total", answered) == before + 1


def test_messages_on_the_channel_that_are_not_chat_messages_are_skipped(
    client: ServiceClient, redis_url: str
) -> None:
    room = new_room()
    with (
        concurrent.futures.ThreadPoolExecutor(1) as pool,
        Redis.from_url(redis_url) as redis,
    ):
        poll = start_poll(pool, client, room, redis_url)
        redis.publish(CHANNEL_PREFIX + room, b"not json")
        redis.publish(CHANNEL_PREFIX + room, json.dumps({"type": "joined", "room": room}))
        posted = post(client, room, "the real one")
        assert poll.result(timeout=READY_TIMEOUT_S).body == posted.body


def test_openapi_documents_poll(fastapi_client: ServiceClient) -> None:
    poll = fastapi_client.get("/openapi.json").json()["paths"]["/poll"]
    assert [p["name"] for p in poll["get"]["parameters"]] == ["room", "timeout_ms"]
    assert [p["name"] for p in poll["post"]["parameters"]] == ["room"]
    schema = poll["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["text"]
    assert schema["properties"]["text"]["maxLength"] == 10_000
    assert "202" in poll["post"]["responses"]


# --------------------------------------------------------------------------- broker outage


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to stop without disturbing the others."""
    with running_redis(tmp_path) as server:
        yield server


def assert_broker_unavailable(answer: Answer) -> None:
    message = "chat broker unavailable, try again later"
    assert_error(answer, 503, "chat_broker_unavailable", message, None)
    assert answer.headers["Retry-After"] == "2"


def assert_outage_and_recovery(
    client: ServiceClient, broker: RedisServer, reconnected: Callable[[], bool] | None = None
) -> None:
    """The broker stops: polls and publishes get the 503 while `/hello` still answers; the
    broker back, both work again.

    `reconnected`: an async service's wait for its chat bus to be back. Its waiting poll is a
    member of the bus, so it is also checked to be told of the outage, not left waiting.
    """
    room = new_room()
    if reconnected is None:
        broker.stop()
    else:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            poll = start_poll(pool, client, room, broker.url)
            broker.stop()
            assert_broker_unavailable(poll.result(timeout=READY_TIMEOUT_S))
    assert_broker_unavailable(client.get(f"/poll?room={room}&timeout_ms=1000"))
    assert_broker_unavailable(post(client, room, "nobody hears this"))
    assert client.get("/hello").status == 200
    broker.start()
    if reconnected is not None:
        assert reconnected()
    assert client.get(f"/poll?room={room}&timeout_ms=0").status == 204
    assert post(client, room, "back").status == 202


def test_flask_poll_without_broker_is_a_503_and_recovers(own_broker: RedisServer) -> None:
    settings = load_wsgi_settings({"REDIS_URL": own_broker.url})
    client = ServiceClient("flask", create_flask_app(settings).test_client())
    assert_outage_and_recovery(client, own_broker)


def test_django_wsgi_poll_without_broker_is_a_503_and_recovers(own_broker: RedisServer) -> None:
    settings = load_django_settings(WSGI, {"REDIS_URL": own_broker.url})
    client = ServiceClient("django-gunicorn", WsgiClient(create_django_wsgi_app(settings)))
    assert_outage_and_recovery(client, own_broker)


def test_fastapi_poll_without_broker_is_a_503_and_recovers(own_broker: RedisServer) -> None:
    test_client = start_fastapi_client(
        load_asgi_settings(environ={"REDIS_URL": own_broker.url}), raise_server_exceptions=False
    )
    try:
        bus = test_client.app.state.chat_bus  # type: ignore[attr-defined]
        client = ServiceClient("fastapi", test_client, chat_bus=bus)
        assert_outage_and_recovery(
            client,
            own_broker,
            lambda: test_client.portal.call(bus.wait_connected, BROKER_CONNECT_TIMEOUT_S),
        )
    finally:
        test_client.__exit__(None, None, None)


def test_tornado_poll_without_broker_is_a_503_and_recovers(own_broker: RedisServer) -> None:
    server = TornadoServer(load_tornado_settings(environ={"REDIS_URL": own_broker.url}))
    server.start(BROKER_CONNECT_TIMEOUT_S)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            bus = server.worker.bus
            client = ServiceClient("tornado", http, chat_bus=bus)
            assert_outage_and_recovery(
                client,
                own_broker,
                lambda: server.call(lambda: bus.wait_connected(BROKER_CONNECT_TIMEOUT_S)),
            )
    finally:
        server.stop()


def test_django_asgi_poll_without_broker_is_a_503_and_recovers(own_broker: RedisServer) -> None:
    app = create_django_asgi_app(load_django_settings(ASGI, {"REDIS_URL": own_broker.url}))
    with TestClient(app, raise_server_exceptions=False) as test_client:  # type: ignore[arg-type]
        bus = app.chat_bus

        def reconnected() -> bool:
            return bool(test_client.portal.call(bus.wait_connected, BROKER_CONNECT_TIMEOUT_S))

        assert reconnected()
        client = ServiceClient("django-uvicorn", test_client, chat_bus=bus)
        assert_outage_and_recovery(client, own_broker, reconnected)
