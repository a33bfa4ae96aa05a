"""Bad input, through nginx: generated requests for every endpoint never get a 5xx.

Schemathesis generates requests from FastAPI's own OpenAPI document (fetched from the running
stack); each generated request is sent to both services (`/asgi/...` and `/wsgi/...`, the same
surface), which must answer alike and never with a server error. Schemathesis only writes JSON
a serializer produced, so hostile JSON text (deep nesting, lone surrogates, huge numbers,
duplicate keys) comes from its own grammar (`tests/hostile_json.py`). Then every numeric
parameter is probed at and around its bounds, hostile query strings and WebSocket messages are
sent, and malformed WebSocket handshakes are refused.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import httpx
import pytest
import schemathesis
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core import NOT_SET
from websockets.sync.client import connect as ws_connect

from gateway_common import validation
from gateway_common.errors import ApiError
from tests.conftest import StackHandle
from tests.hostile_json import HOSTILE_BODIES, HOSTILE_JSON
from tests.reliability.harness import report

pytestmark = pytest.mark.reliability

EXAMPLES_PER_OPERATION = 40
ASGI_ONLY = {"/io/blocking", "/io/threadpool"}
# Valid values are made cheap before sending, so a generated "ms=9999" does not wait 10 s.
CHEAP = {"ms": 20, "n": 1000, "events": 2, "interval_ms": 10, "timeout_ms": 10}
INTEGER = re.compile(r"^[+-]?[0-9]{1,12}$")


def _cheapen(query: dict[str, Any] | None) -> dict[str, Any] | None:
    if not query:
        return query
    cheap = dict(query)
    for name, cap in CHEAP.items():
        value = cheap.get(name)
        if isinstance(value, str) and INTEGER.fullmatch(value) and int(value) > cap:
            cheap[name] = str(cap)
    return cheap


def _encode(body: Any, media: str) -> bytes:
    """A generated body as bytes (negative cases may mix bytes in, or use another media type)."""
    if isinstance(body, bytes):
        return body
    if "json" in media:
        return json.dumps(
            body, default=lambda o: o.decode("latin-1") if isinstance(o, bytes) else str(o)
        ).encode()
    return str(body).encode()


def _check_error_shape(response: httpx.Response) -> None:
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    error = response.json()["error"]
    assert error["status"] == response.status_code
    assert isinstance(error["code"], str) and isinstance(error["message"], str)


def _fuzz(
    client: httpx.Client,
    operation: Any,
    mode: schemathesis.GenerationMode,
    seen: dict[int, int],
    divergent: list[str],
) -> None:
    """Send EXAMPLES_PER_OPERATION generated requests of `operation` to both services.

    POSITIVE cases fit the schema; NEGATIVE ones break it on purpose (wrong types, missing or
    extra fields, bad media types).
    """
    path = operation.path

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        request: dict[str, Any] = {"params": _cheapen(case.query)}
        if case.body is not NOT_SET:
            media = case.media_type or "application/json"
            request["content"] = _encode(case.body, media)
            request["headers"] = {"content-type": media}
        answers = {}
        for prefix in ("asgi", "wsgi"):
            response = client.request(
                operation.method.upper(), f"/{prefix}{case.formatted_path}", **request
            )
            assert response.status_code < 500, (prefix, request, response.text)
            if response.status_code >= 400:
                _check_error_shape(response)
            answers[prefix] = response.status_code
        seen[answers["asgi"]] = seen.get(answers["asgi"], 0) + 1
        if path in ASGI_ONLY:
            assert answers["wsgi"] == 404
        elif answers["asgi"] != answers["wsgi"]:
            divergent.append(f"{path} {request}: {answers}")

    try:
        send()
    except Unsatisfiable:
        # No negative case exists for an operation without parameters or body (/healthz).
        assert mode is schemathesis.GenerationMode.NEGATIVE


def test_generated_requests_never_get_a_server_error(chaos_stack: StackHandle):
    stack = chaos_stack
    document = httpx.get(f"{stack.public_url}/asgi/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    stats: dict[str, dict[int, int]] = {}
    divergent: list[str] = []

    with httpx.Client(base_url=stack.public_url, timeout=30) as client:
        for result in schema.get_all_operations():
            operation = result.ok()
            seen = stats.setdefault(f"{operation.method.upper()} {operation.path}", {})
            for mode in schemathesis.GenerationMode:
                _fuzz(client, operation, mode, seen, divergent)

    total = sum(sum(v.values()) for v in stats.values())
    report(
        f"fuzzing through nginx (schemathesis from /asgi/openapi.json, up to "
        f"{EXAMPLES_PER_OPERATION} positive and {EXAMPLES_PER_OPERATION} negative examples per "
        "operation, each sent to /asgi and /wsgi)",
        f"{total} generated requests x 2 services, 0 server errors; statuses per operation:",
        *(f"  {name}: {dict(sorted(counts.items()))}" for name, counts in stats.items()),
    )
    assert not divergent


JSON_HEADERS = {"content-type": "application/json"}


# Every route that reads a JSON body.
JSON_ROUTES = ["/echo", "/poll?room=hostile"]


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_hostile_json_bodies_get_400_malformed_json(chaos_stack: StackHandle, route: str):
    seen = []
    with httpx.Client(base_url=chaos_stack.public_url, timeout=30) as client:
        for name, body, says in HOSTILE_BODIES:
            for prefix in ("asgi", "wsgi"):
                response = client.post(f"/{prefix}{route}", content=body, headers=JSON_HEADERS)
                assert response.status_code == 400, (prefix, name, response.text[:300])
                _check_error_shape(response)
                error = response.json()["error"]
                assert error["code"] == "malformed_json", (prefix, name, error)
                assert says.lower() in error["message"].lower(), (prefix, name, error)
            seen.append(name)
    report(
        f"hostile JSON bodies on {route}, both services: 400 malformed_json each", ", ".join(seen)
    )


def test_generated_hostile_json_never_gets_a_server_error(chaos_stack: StackHandle):
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=chaos_stack.public_url, timeout=30) as client:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(text=HOSTILE_JSON)
        def send(text: str) -> None:
            body = text.encode("utf-8", "surrogatepass")
            answers = [
                client.post(f"/{prefix}/echo", content=body, headers=JSON_HEADERS)
                for prefix in ("asgi", "wsgi")
            ]
            for response in answers:
                assert response.status_code in (200, 400, 422), (text[:200], response.text)
                if response.status_code >= 400:
                    _check_error_shape(response)
            assert answers[0].status_code == answers[1].status_code, text[:200]
            statuses[answers[0].status_code] = statuses.get(answers[0].status_code, 0) + 1

        send()
    report(
        f"generated hostile JSON through nginx ({EXAMPLES_PER_OPERATION} bodies x 2 services)",
        f"statuses: {dict(sorted(statuses.items()))}",
    )


# Query strings a decoder may trip on: bytes that are not UTF-8, an encoded surrogate, an
# overlong encoding, NUL, a full-width digit, a key that is not UTF-8, a parameter in brackets.
HOSTILE_QUERIES = [
    "ms=%ff",
    "ms=%ED%A0%80",
    "ms=%C0%B5",
    "ms=%00",
    "ms=%EF%BC%95",
    "%ff=1",
    "ms[]=5",
    "ms=5;ms=6",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_query_strings_get_400_invalid_parameter(chaos_stack: StackHandle, query: str):
    with httpx.Client(base_url=chaos_stack.public_url, timeout=30) as client:
        for prefix in ("asgi", "wsgi"):
            response = client.get(f"/{prefix}/io?{query}")
            assert response.status_code == 400, (prefix, query, response.text)
            _check_error_shape(response)
            assert response.json()["error"]["field"] == "ms"


HOSTILE_ROOMS = ["%ff", "%ED%A0%80", "%C0%B5", "a%00b", "%EF%BC%95", "a%20b"]


@pytest.mark.parametrize("room", HOSTILE_ROOMS)
def test_hostile_chat_rooms_are_refused_with_403(chaos_stack: StackHandle, room: str):
    with pytest.raises(websockets.InvalidStatus) as refused:
        ws_connect(f"{chaos_stack.ws_url}/asgi/ws/chat?room={room}").close()
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("room", HOSTILE_ROOMS)
def test_hostile_poll_rooms_get_400_invalid_parameter(chaos_stack: StackHandle, room: str):
    with httpx.Client(base_url=chaos_stack.public_url, timeout=30) as client:
        for prefix in ("asgi", "wsgi"):
            for response in (
                client.get(f"/{prefix}/poll?room={room}&timeout_ms=0"),
                client.post(f"/{prefix}/poll?room={room}", json={"text": "x"}),
            ):
                assert response.status_code == 400, (prefix, room, response.text)
                _check_error_shape(response)
                assert response.json()["error"]["field"] == "room"


# Text the sockets carry as opaque text: they must come back (echo) or be broadcast (chat)
# unchanged, whatever a JSON parser would make of them.
HOSTILE_TEXT = [
    "[" * 60_000,
    '{"message":"\\ud800"}',
    "9" * 5_000,
    '{"message":NaN,"message":1e999}',
]


def test_hostile_websocket_text_is_carried_unchanged(chaos_stack: StackHandle):
    with ws_connect(f"{chaos_stack.ws_url}/asgi/ws/echo", max_size=None) as echo:
        for text in HOSTILE_TEXT:
            echo.send(text)
            assert echo.recv(timeout=10) == text
    with ws_connect(f"{chaos_stack.ws_url}/asgi/ws/chat?room=hostile", max_size=None) as chat:
        assert json.loads(chat.recv(timeout=10))["type"] == "joined"
        for text in HOSTILE_TEXT:
            chat.send(text)
            envelope = json.loads(chat.recv(timeout=10))
            assert (envelope["type"], envelope["text"]) == ("message", text)
    report("hostile text over /ws/echo and /ws/chat", f"{len(HOSTILE_TEXT)} messages, unchanged")


@pytest.mark.parametrize("path", ["/asgi/ws/echo", "/asgi/ws/chat?room=hostile"])
@pytest.mark.parametrize("payload", [b"\xff\xfe", b"\xed\xa0\x80", b'{"m":"\xc0\xaf"}'])
def test_websocket_text_that_is_not_utf8_closes_1007(
    chaos_stack: StackHandle, path: str, payload: bytes
):
    with ws_connect(f"{chaos_stack.ws_url}{path}") as socket_:
        if "chat" in path:
            socket_.recv(timeout=10)  # joined
        socket_.send(payload, text=True)  # a text frame whose bytes are not UTF-8
        with pytest.raises(websockets.ConnectionClosed):
            socket_.recv(timeout=10)
        assert socket_.close_code == 1007  # invalid frame payload data
    assert httpx.get(f"{chaos_stack.public_url}/asgi/healthz", timeout=10).status_code == 200


# Every numeric parameter, at and around its bounds, with the oddities a parser may trip on.
NUMERIC = [
    # (path, parameter, the other parameters, low, high, high is cheap to run)
    ("/io", "ms", {}, validation.IO_MS_MIN, validation.IO_MS_MAX, False),
    ("/cpu", "n", {}, validation.CPU_N_MIN, validation.CPU_N_MAX, False),
    ("/stream", "events", {"interval_ms": "0"}, 1, validation.STREAM_EVENTS_MAX, True),
    ("/stream", "interval_ms", {"events": "1"}, 0, validation.STREAM_INTERVAL_MS_MAX, True),
    (
        "/poll",
        "timeout_ms",
        {"room": "bounds"},
        validation.POLL_TIMEOUT_MS_MIN,
        validation.POLL_TIMEOUT_MS_MAX,
        False,
    ),
]
# A valid value's answer where it is not 200: a poll nobody posts to times out.
SUCCESS = {"/poll": 204}
ODD_VALUES = [" 5", "5 ", "+5", "05", "-0", "5.0", "1e3", "0x10", "", "٥", "5\n", "9" * 13, "5%00"]


def _oracle(path: str, name: str, raw: str, low: int, high: int) -> int:
    try:
        validation.int_param(name, [raw], low, high)
    except ApiError:
        return 400
    return SUCCESS.get(path, 200)


@pytest.mark.parametrize(("path", "name", "others", "low", "high", "high_cheap"), NUMERIC)
def test_every_numeric_parameter_is_bounded(
    chaos_stack: StackHandle, path, name, others, low, high, high_cheap
):
    values = [str(low - 1), str(low), str(high + 1), str(-(10**12)), *ODD_VALUES]
    if high_cheap:
        values.append(str(high))
    outcomes: list[str] = []
    with httpx.Client(base_url=chaos_stack.public_url, timeout=30) as client:
        for prefix in ("asgi", "wsgi"):
            for raw in values:
                response = client.get(f"/{prefix}{path}", params={**others, name: raw})
                expected = _oracle(path, name, raw, low, high)
                assert response.status_code == expected, (prefix, raw, response.text)
                if expected == 400:
                    _check_error_shape(response)
                    assert response.json()["error"]["field"] == name
                outcomes.append(f"{raw!r}->{response.status_code}")
            repeated = client.get(f"/{prefix}{path}", params=[(name, str(low)), (name, str(low))])
            assert repeated.status_code == 400
    report(
        f"bounds of {path}?{name} ({low}..{high}), both services",
        ", ".join(outcomes[: len(values)]),
    )


HANDSHAKES = {
    "no Sec-WebSocket-Key": (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13"
    ),
    "bad Sec-WebSocket-Key": (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: not-base64!\r\n"
        "Sec-WebSocket-Version: 13"
    ),
    "unsupported version 8": (
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8"
    ),
    "no Upgrade header": "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "upgrade to something else": (
        "Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13"
    ),
}


@pytest.mark.parametrize("target", ["/asgi/ws/echo", "/asgi/ws/chat?room=ok", "/wsgi/ws/echo"])
def test_malformed_websocket_handshakes_are_refused(chaos_stack: StackHandle, target: str):
    port = chaos_stack.settings.ports["public"]
    seen = {}
    for name, headers in HANDSHAKES.items():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: lab\r\n{headers}\r\n\r\n".encode())
            status_line = sock.recv(4096).split(b"\r\n", 1)[0].decode()
        status = int(status_line.split()[1])
        seen[name] = status
        assert 400 <= status < 500, (name, status_line)
    report(f"malformed WebSocket handshakes on {target}", str(seen))


OVERSIZE = {
    "request line over 4 KiB": (
        "GET /wsgi/io?ms=" + "9" * 5000 + " HTTP/1.1\r\nHost: lab\r\n\r\n",
        414,
        "uri_too_long",
    ),
    "header over 4 KiB": (
        "GET /asgi/hello HTTP/1.1\r\nHost: lab\r\nX-Big: " + "a" * 5000 + "\r\n\r\n",
        400,
        "header_too_large",
    ),
    "garbage request line": ("GARBAGE\r\n\r\n", 400, "bad_request"),
    "Content-Length and Transfer-Encoding together (smuggling)": (
        "POST /wsgi/echo HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "bad_request",
    ),
    "internal error page asked for directly": (
        "GET /_errors/414.json HTTP/1.1\r\nHost: lab\r\n\r\n",
        404,
        "not_found",
    ),
}


@pytest.mark.parametrize("name", OVERSIZE)
def test_malformed_and_oversize_requests_get_the_json_error_shape_from_nginx(
    chaos_stack: StackHandle, name: str
):
    raw, status, code = OVERSIZE[name]
    with socket.create_connection(("127.0.0.1", chaos_stack.settings.ports["public"]), 10) as sock:
        sock.sendall(raw.encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    assert int(head.split()[1]) == status, head
    assert "content-type: application/json" in head.lower()
    assert json.loads(body)["error"] == {"status": status, "code": code, "message": ANY_STR}


class _AnyStr(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_STR = _AnyStr()


@pytest.mark.parametrize("prefix", ["wsgi", "asgi"])
def test_two_content_type_headers_get_the_same_json_answer_from_both_services(
    chaos_stack: StackHandle, prefix: str
):
    """nginx passes on only the first Content-Type, so both services see one and agree."""
    body = b'{"message": "twice"}'
    raw = (
        f"POST /{prefix}/echo HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", chaos_stack.settings.ports["public"]), 10) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, answer = data.decode().partition("\r\n\r\n")
    assert int(head.split()[1]) == 200, head
    assert "content-type: application/json" in head.lower()
    assert json.loads(answer)["echo"] == {"message": "twice"}
