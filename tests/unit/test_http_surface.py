"""The shared HTTP surface: every service, same shapes, same errors (docs/architecture.md)."""

from __future__ import annotations

import re
import socket

import pytest
from service_clients import ServiceClient

from gateway_common import variants, workload


def assert_error(answer, status: int, code: str, message: str, field: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    expected = {"status": status, "code": code, "message": message}
    if field is not None:
        expected["field"] = field
    assert answer.json() == {"error": expected}


def test_healthz(client: ServiceClient) -> None:
    answer = client.get("/healthz")
    assert answer.status == 200
    body = answer.json()
    assert list(body) == [
        "status",
        "service",
        "framework",
        "server",
        "interface",
        "pid",
        "host",
        "workers",
        "worker_class",
        "threads",
    ]
    variant = variants.get(client.service)  # each app's default variant, as registered
    assert body["status"] == "ok"
    assert body["service"] == client.service
    assert body["framework"] == variant.framework
    assert body["server"] == variant.server
    assert body["interface"] == variant.interface
    assert body["worker_class"] == variant.worker_class
    assert isinstance(body["pid"], int)
    assert body["host"] == socket.gethostname()
    assert body["workers"] == 2
    assert body["threads"] == 1


def test_hello(client: ServiceClient) -> None:
    answer = client.get("/hello")
    assert answer.status == 200
    assert answer.json() == {"message": "hello", "service": client.service}


def test_request_id_generated_and_passed_through(client: ServiceClient) -> None:
    generated = client.get("/hello").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    passed = client.get("/hello", headers={"X-Request-ID": "edge-42:a.b_c"})
    assert passed.headers["X-Request-ID"] == "edge-42:a.b_c"
    insane = client.get("/hello", headers={"X-Request-ID": "no spaces <allowed>"})
    assert re.fullmatch(r"[0-9a-f]{32}", insane.headers["X-Request-ID"])


def test_request_id_on_errors(client: ServiceClient) -> None:
    answer = client.get("/nope", headers={"X-Request-ID": "err-1"})
    assert answer.headers["X-Request-ID"] == "err-1"


def test_io(client: ServiceClient) -> None:
    answer = client.get("/io?ms=20")
    assert answer.status == 200
    body = answer.json()
    assert set(body) == {"service", "interface", "requested_ms", "waited_ms", "mode"}
    assert body["service"] == client.service
    assert body["requested_ms"] == 20
    assert isinstance(body["waited_ms"], float)
    assert body["waited_ms"] >= 19.0
    wsgi = variants.get(client.service).interface == "wsgi"
    expected_mode = "time.sleep" if wsgi else "asyncio.sleep"
    assert body["mode"] == expected_mode


def test_io_zero_is_allowed(client: ServiceClient) -> None:
    assert client.get("/io?ms=0").status == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "ms is required"),
        ("?ms=abc", "ms must be an integer between 0 and 10000, got 'abc'"),
        ("?ms=-1", "ms must be an integer between 0 and 10000, got '-1'"),
        ("?ms=10001", "ms must be an integer between 0 and 10000, got '10001'"),
        ("?ms=1.5", "ms must be an integer between 0 and 10000, got '1.5'"),
        ("?ms=", "ms must be an integer between 0 and 10000, got ''"),
        ("?ms=1&ms=2", "ms must be given once"),
    ],
)
def test_io_invalid(client: ServiceClient, query: str, message: str) -> None:
    assert_error(client.get(f"/io{query}"), 400, "invalid_parameter", message, "ms")


def test_cpu(client: ServiceClient) -> None:
    answer = client.get("/cpu?n=1000")
    assert answer.status == 200
    body = answer.json()
    assert set(body) == {"service", "interface", "n", "result", "elapsed_ms"}
    assert body["n"] == 1000
    assert body["result"] == workload.cpu_work(1000)
    assert isinstance(body["elapsed_ms"], float)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "n is required"),
        ("?n=0", "n must be an integer between 1 and 5000000, got '0'"),
        ("?n=5000001", "n must be an integer between 1 and 5000000, got '5000001'"),
        ("?n=x", "n must be an integer between 1 and 5000000, got 'x'"),
    ],
)
def test_cpu_invalid(client: ServiceClient, query: str, message: str) -> None:
    assert_error(client.get(f"/cpu{query}"), 400, "invalid_parameter", message, "n")


def test_stream(client: ServiceClient) -> None:
    answer = client.get("/stream?events=3&interval_ms=5")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert answer.headers["Cache-Control"] == "no-cache"
    assert answer.headers["X-Accel-Buffering"] == "no"
    service = client.service
    expected = "".join(
        f'id: {i}\nevent: tick\ndata: {{"seq":{i},"of":3,"service":"{service}"}}\n\n'
        for i in (1, 2, 3)
    )
    expected += f'event: end\ndata: {{"of":3,"service":"{service}"}}\n\n'
    assert answer.text == expected


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("?interval_ms=0", "events", "events is required"),
        ("?events=1", "interval_ms", "interval_ms is required"),
        (
            "?events=0&interval_ms=0",
            "events",
            "events must be an integer between 1 and 100, got '0'",
        ),
        (
            "?events=1&interval_ms=5001",
            "interval_ms",
            "interval_ms must be an integer between 0 and 5000, got '5001'",
        ),
        (
            "?events=100&interval_ms=601",
            None,
            "events * interval_ms must be at most 60000, got 100 * 601 = 60100",
        ),
    ],
)
def test_stream_invalid(client: ServiceClient, query: str, field: str | None, message: str) -> None:
    assert_error(client.get(f"/stream{query}"), 400, "invalid_parameter", message, field)


def test_echo(client: ServiceClient) -> None:
    answer = client.post_json("/echo", {"message": "héllo", "tags": ["a", "b"]})
    assert answer.status == 200
    assert answer.json() == {
        "service": client.service,
        "echo": {"message": "héllo", "tags": ["a", "b"]},
        "length": 5,
    }


def test_echo_without_tags(client: ServiceClient) -> None:
    answer = client.post_json("/echo", {"message": "x"})
    assert answer.json() == {"service": client.service, "echo": {"message": "x"}, "length": 1}


def test_echo_same_bytes_in_every_service(
    flask_client: ServiceClient, fastapi_client: ServiceClient, tornado_client: ServiceClient
) -> None:
    document = {"message": "é ü", "tags": ["t"]}
    flask_body = flask_client.post_json("/echo", document).body.strip()
    fastapi_body = fastapi_client.post_json("/echo", document).body.strip()
    tornado_body = tornado_client.post_json("/echo", document).body
    assert flask_body.replace(b'"flask"', b'"fastapi"') == fastapi_body
    assert tornado_body.replace(b'"tornado"', b'"fastapi"') == fastapi_body


def test_errors_same_bytes_in_every_service(
    flask_client: ServiceClient, fastapi_client: ServiceClient, tornado_client: ServiceClient
) -> None:
    for path in ("/io?ms=%C3%A9", "/stream?events=100&interval_ms=601", "/nope"):
        bodies = {c.service: c.get(path).body.strip() for c in (flask_client, fastapi_client)}
        assert tornado_client.get(path).body == bodies["fastapi"] == bodies["flask"], path


# Requests whose answers Django gives with Flask's very bytes (the service's name aside).
SAME_BYTES_REQUESTS = [
    pytest.param("GET", "/hello", None, None, id="hello"),
    pytest.param("GET", "/io?ms=abc", None, None, id="bad-parameter"),
    pytest.param("GET", "/stream?events=2&interval_ms=0", None, None, id="stream"),
    pytest.param("GET", "/nope", None, None, id="not-found"),
    pytest.param("POST", "/hello", None, None, id="method-not-allowed"),
    pytest.param(
        "POST",
        "/echo",
        "application/json",
        '{"message": "é ü", "tags": ["t"]}'.encode(),
        id="echo",
    ),
    pytest.param("POST", "/echo", "application/json", b'{"message": 1}', id="invalid-body"),
    pytest.param(
        "POST", "/echo", "application/json", b'{"message": "x", "message": "y"}', id="dup-key"
    ),
    pytest.param("POST", "/echo", "text/plain", b"{}", id="media-type"),
    pytest.param("POST", "/echo", "application/json", b"x" * (64 * 1024 + 1), id="too-large"),
]


@pytest.mark.parametrize("django", ["django_gunicorn", "django_uvicorn"])
@pytest.mark.parametrize(("method", "path", "content_type", "body"), SAME_BYTES_REQUESTS)
def test_django_answers_with_flasks_bytes(
    request: pytest.FixtureRequest,
    flask_client: ServiceClient,
    django: str,
    method: str,
    path: str,
    content_type: str | None,
    body: bytes | None,
) -> None:
    django_client: ServiceClient = request.getfixturevalue(f"{django}_client")
    headers = {"Content-Type": content_type} if content_type else {}
    flask = flask_client.request(method, path, body=body, headers=headers)
    other = django_client.request(method, path, body=body, headers=headers)
    assert other.status == flask.status
    assert other.headers["Content-Type"] == flask.headers["Content-Type"]
    service = django_client.service.encode()
    assert other.body == flask.body.replace(b'"flask"', b'"' + service + b'"')


def test_echo_charset_parameter_is_accepted(client: ServiceClient) -> None:
    answer = client.post_json("/echo", {"message": "x"}, "application/json; charset=utf-8")
    assert answer.status == 200


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        (["message"], None, "body must be a JSON object"),
        ({}, "message", "message is required"),
        ({"message": ""}, "message", "message must be a string of 1 to 1000 characters"),
        ({"message": "x" * 1001}, "message", "message must be a string of 1 to 1000 characters"),
        ({"message": 5}, "message", "message must be a string of 1 to 1000 characters"),
        ({"message": "x", "extra": 1}, "extra", "unknown field 'extra'"),
        (
            {"message": "x", "tags": ["t"] * 11},
            "tags",
            "tags must be a list of at most 10 strings of 1 to 32 characters",
        ),
        (
            {"message": "x", "tags": ["x" * 33]},
            "tags",
            "tags must be a list of at most 10 strings of 1 to 32 characters",
        ),
        (
            {"message": "x", "tags": "t"},
            "tags",
            "tags must be a list of at most 10 strings of 1 to 32 characters",
        ),
    ],
)
def test_echo_invalid_body(
    client: ServiceClient, document: object, field: str | None, message: str
) -> None:
    assert_error(client.post_json("/echo", document), 422, "invalid_body", message, field)


def test_echo_malformed_json(client: ServiceClient) -> None:
    answer = client.request(
        "POST", "/echo", body=b'{"message": ', headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "malformed_json"
    assert answer.json()["error"]["message"].startswith("request body is not valid JSON: ")


def test_echo_nan_is_malformed(client: ServiceClient) -> None:
    answer = client.request(
        "POST", "/echo", body=b'{"message": NaN}', headers={"Content-Type": "application/json"}
    )
    assert answer.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("content_type", "shown"), [("text/plain", "'text/plain'"), (None, "none")]
)
def test_echo_wrong_media_type(client: ServiceClient, content_type: str | None, shown: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.request("POST", "/echo", body=b'{"message": "x"}', headers=headers)
    assert_error(
        answer,
        415,
        "unsupported_media_type",
        f"Content-Type must be application/json, got {shown}",
    )


@pytest.mark.parametrize("size", [64 * 1024 + 1, 200_000])
def test_echo_too_large(client: ServiceClient, size: int) -> None:
    body = b'{"message": "' + b"a" * size + b'"}'
    answer = client.request(
        "POST", "/echo", body=body, headers={"Content-Type": "application/json"}
    )
    assert_error(answer, 413, "payload_too_large", "request body must be at most 65536 bytes")


def test_echo_exactly_64_kib_is_read(client: ServiceClient) -> None:
    prefix, suffix = b'{"message": "', b'"}'
    body = prefix + b"a" * (64 * 1024 - len(prefix) - len(suffix)) + suffix
    answer = client.request(
        "POST", "/echo", body=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status == 422  # read in full, then refused for the message length
    assert answer.json()["error"]["field"] == "message"


def test_not_found(client: ServiceClient) -> None:
    assert_error(client.get("/nope"), 404, "not_found", "no route for GET /nope")


def test_method_not_allowed(client: ServiceClient) -> None:
    answer = client.request("POST", "/hello")
    assert_error(answer, 405, "method_not_allowed", "method POST is not allowed for /hello")
    assert "GET" in answer.headers["Allow"]


def test_get_on_echo_is_method_not_allowed(client: ServiceClient) -> None:
    assert client.get("/echo").status == 405


def test_options_is_method_not_allowed(client: ServiceClient) -> None:
    assert client.request("OPTIONS", "/hello").status == 405


def test_head_is_served_like_get(client: ServiceClient) -> None:
    answer = client.request("HEAD", "/hello")
    assert answer.status == 200
    assert answer.body == b""


def test_no_metrics_route(client: ServiceClient) -> None:
    assert client.get("/metrics").status == 404
