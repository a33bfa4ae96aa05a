"""The Django project beyond the shared contract: its two URL tables, bodies without a length,
streams, refused WebSocket handshakes, its settings and its two servers really started.

The shared contract itself runs on Django in test_http_surface.py (the `client` fixture).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import runpy
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import httpx
import pytest
import websockets
from asgiref.sync import iscoroutinefunction
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from service_clients import ServiceClient
from starlette.testclient import WebSocketDenialResponse
from werkzeug.test import Client as WsgiClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from django_app import routes
from django_app.app import create_asgi_app, create_wsgi_app
from django_app.asgi_front import Receive, bounded_receive
from django_app.settings_env import ASGI, WSGI, load_django_settings
from gateway_common import variants
from gateway_common.settings import Bind, ConfigError
from tests.redis_server import RedisServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# Settings read from this environment get every default; the broker is never contacted.
UNUSED_BROKER = {"REDIS_URL": "redis://127.0.0.1:1/0"}
START_TIMEOUT_S = 30.0  # a bound against hanging, not a speed requirement


def sample(name: str, labels: dict[str, str]) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry.get_sample_value(name, labels) or 0.0


# The URL tables: one route table, plain views for WSGI, async views for ASGI.


@pytest.mark.parametrize("route", routes.ROUTES, ids=lambda r: r.path)
def test_each_interface_resolves_to_views_written_for_it(route: routes.Route) -> None:
    from django.urls import resolve

    wsgi = resolve(route.path, "django_app.urls_wsgi")
    asgi = resolve(route.path, "django_app.urls_asgi")
    # Django runs a plain view in a thread under ASGI and an async one through a fresh event
    # loop under WSGI; neither happens here.
    assert not iscoroutinefunction(wsgi.func)
    assert iscoroutinefunction(asgi.func)
    assert wsgi.url_name == asgi.url_name == route.path


def test_waiting_views_sleep_the_interfaces_way(
    django_gunicorn_client: ServiceClient, django_uvicorn_client: ServiceClient
) -> None:
    assert django_gunicorn_client.get("/io?ms=1").json()["mode"] == "time.sleep"
    assert django_uvicorn_client.get("/io?ms=1").json()["mode"] == "asyncio.sleep"


# Bodies without Content-Length (chunked): read, and bounded like the others.

ECHO_PREFIX, ECHO_SUFFIX = b'{"message": "', b'"}'


def _echo_body(total: int) -> bytes:
    return ECHO_PREFIX + b"a" * (total - len(ECHO_PREFIX) - len(ECHO_SUFFIX)) + ECHO_SUFFIX


@pytest.mark.parametrize(
    ("body", "status"),
    [(b'{"message": "chunked"}', 200), (_echo_body(64 * 1024), 422), (_echo_body(200_000), 413)],
    ids=["small", "exactly-64-KiB", "too-large"],
)
def test_chunked_body_under_wsgi(body: bytes, status: int) -> None:
    # What Gunicorn hands over for a chunked body: no CONTENT_LENGTH, a terminated input.
    environ = EnvironBuilder(
        "/echo", method="POST", input_stream=BytesIO(body), content_type="application/json"
    ).get_environ()
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    app = create_wsgi_app(load_django_settings(WSGI, UNUSED_BROKER))
    chunks, status_line, _headers = run_wsgi_app(app, environ, buffered=True)
    assert int(status_line.split()[0]) == status
    if status == 200:
        assert json.loads(b"".join(chunks))["echo"] == {"message": "chunked"}


@pytest.mark.parametrize(
    ("body", "status"),
    [(b'{"message": "chunked"}', 200), (_echo_body(64 * 1024), 422), (_echo_body(200_000), 413)],
    ids=["small", "exactly-64-KiB", "too-large"],
)
def test_chunked_body_under_asgi(
    django_uvicorn_test_client: TestClient, body: bytes, status: int
) -> None:
    def chunks() -> Iterator[bytes]:  # an iterator: sent chunked, without a length
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    answer = django_uvicorn_test_client.post(
        "/echo", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == status
    if status == 200:
        assert answer.json()["echo"] == {"message": "chunked"}


def _body_source(chunks: int, size: int) -> tuple[list[int], Receive]:
    """An ASGI receive that hands out `chunks` body chunks; `pulled` counts the calls."""
    pulled: list[int] = []

    async def receive() -> dict[str, object]:
        pulled.append(1)
        more = len(pulled) < chunks
        return {"type": "http.request", "body": b"x" * size, "more_body": more}

    return pulled, receive


def test_asgi_body_past_the_bound_is_never_read() -> None:
    async def drain(receive: Receive) -> bytes:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message.get("more_body", False):
                return body

    async def scenario() -> None:
        limit = 65_537
        pulled, receive = _body_source(chunks=20, size=10_000)
        bounded = bounded_receive({"headers": []}, receive, limit)
        assert len(await drain(bounded)) == limit
        assert len(pulled) == 7  # ceil(65537 / 10000) of 20 chunks
        # Afterwards only a disconnect is waited for; nothing more is read.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bounded(), 0.05)
        assert len(pulled) == 7

        pulled, receive = _body_source(chunks=20, size=10_000)
        declared = {"headers": [(b"content-length", b"200000")]}
        bounded = bounded_receive(declared, receive, limit)
        assert await drain(bounded) == b""  # over the bound by its header: not read at all
        assert pulled == []

    asyncio.run(scenario())


# Streams: counted when they end, or when they are closed before.


def test_wsgi_stream_is_in_progress_until_closed() -> None:
    client = WsgiClient(create_wsgi_app(load_django_settings(WSGI, UNUSED_BROKER)))
    labels = {
        "service": "django-gunicorn",
        "interface": "wsgi",
        "method": "GET",
        "route": "/stream",
    }
    done_before = sample("http_request_duration_seconds_count", labels)
    response = client.get("/stream?events=3&interval_ms=10", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"id: 1\n")  # streamed: the first event, not the lot
    assert sample("http_requests_in_progress", labels) == 1
    response.close()  # the client leaves before the end
    assert sample("http_requests_in_progress", labels) == 0
    assert sample("http_request_duration_seconds_count", labels) == done_before + 1


@pytest.mark.parametrize("name", ["django_gunicorn", "django_uvicorn"])
def test_head_on_a_stream_has_no_body_and_is_counted(
    request: pytest.FixtureRequest, name: str
) -> None:
    client: ServiceClient = request.getfixturevalue(f"{name}_client")
    interface = variants.get(client.service).interface
    labels = {"service": client.service, "interface": interface, "method": "HEAD"}
    counted = {**labels, "route": "/stream", "status": "200"}
    before = sample("http_requests_total", counted)
    answer = client.request("HEAD", "/stream?events=2&interval_ms=0")
    assert answer.status == 200
    assert answer.body == b""
    assert sample("http_requests_total", counted) == before + 1
    assert sample("http_requests_in_progress", {**labels, "route": "/stream"}) == 0


# Errors Django raises itself.


@pytest.mark.parametrize("name", ["django_gunicorn", "django_uvicorn"])
def test_unhandled_error_is_a_contract_500(
    request: pytest.FixtureRequest, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client: ServiceClient = request.getfixturevalue(f"{name}_client")

    def explode(n: int) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr("gateway_common.workload.cpu_work", explode)
    answer = client.get("/cpu?n=5", headers={"X-Request-ID": "crash-3"})
    assert answer.status == 500
    assert answer.json() == {
        "error": {"status": 500, "code": "internal_error", "message": "internal server error"}
    }
    assert answer.headers["X-Request-ID"] == "crash-3"


@pytest.mark.parametrize("name", ["django_gunicorn", "django_uvicorn"])
def test_a_request_django_refuses_to_read_is_a_contract_400(
    request: pytest.FixtureRequest, name: str
) -> None:
    client: ServiceClient = request.getfixturevalue(f"{name}_client")
    # Over Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (1000): a SuspiciousOperation.
    query = "&".join(f"f{i}=1" for i in range(1001))
    answer = client.get(f"/io?ms=1&{query}")
    assert answer.status == 400
    assert answer.json() == {
        "error": {"status": 400, "code": "bad_request", "message": "bad request"}
    }


# WebSockets: not served; the handshake is refused with the contract's 404.


def test_websocket_handshake_is_refused_with_a_json_404(
    django_uvicorn_test_client: TestClient,
) -> None:
    labels = {
        "service": "django-uvicorn",
        "interface": "asgi",
        "method": "GET",
        "route": "<unmatched>",
        "status": "404",
    }
    before = sample("http_requests_total", labels)
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        django_uvicorn_test_client.websocket_connect(
            "/ws/echo", headers={"X-Request-ID": "ws-refused-1"}
        ),
    ):
        pass
    assert refused.value.status_code == 404
    assert refused.value.headers["x-request-id"] == "ws-refused-1"
    assert refused.value.json() == {
        "error": {"status": 404, "code": "not_found", "message": "no route for GET /ws/echo"}
    }
    assert sample("http_requests_total", labels) == before + 1


@pytest.mark.parametrize("name", ["django_gunicorn", "django_uvicorn"])
def test_websocket_paths_over_http_are_404(request: pytest.FixtureRequest, name: str) -> None:
    client: ServiceClient = request.getfixturevalue(f"{name}_client")
    assert client.get("/ws/echo").status == 404
    assert client.get("/ws/chat?room=r").status == 404


# Settings: the registry's defaults, errors that name the variable.


def test_settings_default_to_the_registry() -> None:
    wsgi = load_django_settings(WSGI, UNUSED_BROKER)
    gunicorn = variants.get("django-gunicorn")
    assert (wsgi.service, wsgi.server, wsgi.interface) == ("django-gunicorn", "gunicorn", "wsgi")
    assert (wsgi.workers, wsgi.threads, wsgi.worker_class) == (2, 1, "sync")
    assert wsgi.bind == Bind("127.0.0.1", variants.APP_PORT_BASE + gunicorn.slot)
    assert wsgi.metrics_bind == Bind("127.0.0.1", variants.METRICS_PORT_BASE + gunicorn.slot)
    assert (wsgi.root_path, wsgi.capacity) == ("", 2)

    asgi = load_django_settings(ASGI, UNUSED_BROKER)
    assert (asgi.service, asgi.server, asgi.interface) == ("django-uvicorn", "uvicorn", "asgi")
    assert (asgi.workers, asgi.threads, asgi.worker_class) == (2, 1, "uvicorn")
    assert asgi.root_path == "/django-uvicorn"
    assert asgi.capacity == 2  # event loops


def test_settings_take_the_registrys_server_env() -> None:
    variant = variants.get("django-uvicorn")
    env = variant.server_env("127.0.0.1:18020", "127.0.0.1:19220")
    settings = load_django_settings(ASGI, {**UNUSED_BROKER, **env})
    assert settings.bind == Bind("127.0.0.1", 18020)
    assert settings.metrics_bind == Bind("127.0.0.1", 19220)
    assert settings.root_path == variant.prefix


def test_sync_with_threads_is_gthread() -> None:
    settings = load_django_settings(WSGI, {**UNUSED_BROKER, "DJANGO_THREADS": "4"})
    assert (settings.worker_class, settings.capacity) == ("gthread", 8)


@pytest.mark.parametrize(
    ("interface", "env", "message"),
    [
        (WSGI, {"DJANGO_WORKERS": "0"}, "DJANGO_WORKERS must be an integer between 1 and 64"),
        (WSGI, {"DJANGO_BIND": "nowhere"}, "DJANGO_BIND must look like HOST:PORT"),
        (WSGI, {"DJANGO_WORKER_CLASS": "gevent"}, "DJANGO_WORKER_CLASS must be one of sync"),
        (ASGI, {"DJANGO_ROOT_PATH": "/x/"}, "DJANGO_ROOT_PATH must be empty or look like"),
        (
            WSGI,
            {"DJANGO_BIND": "127.0.0.1:9000", "DJANGO_METRICS_BIND": "127.0.0.1:9000"},
            "DJANGO_METRICS_BIND must differ from DJANGO_BIND",
        ),
        (WSGI, {"GATEWAY_VARIANT": "flask"}, "names 'flask', a flask wsgi variant"),
        (WSGI, {"GATEWAY_VARIANT": "django-uvicorn"}, "this entry point serves Django over wsgi"),
        (ASGI, {"GATEWAY_VARIANT": "nope"}, "unknown variant 'nope'"),
    ],
)
def test_bad_settings_name_the_variable(interface: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_django_settings(interface, {**UNUSED_BROKER, **env})


@pytest.mark.parametrize("interface", [WSGI, ASGI])
def test_the_broker_is_required(interface: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL is required"):
        load_django_settings(interface, {})


def test_the_entry_points_refuse_the_other_interfaces_settings() -> None:
    with pytest.raises(ConfigError):
        create_wsgi_app(load_django_settings(ASGI, UNUSED_BROKER))
    with pytest.raises(ConfigError):
        create_asgi_app(load_django_settings(WSGI, UNUSED_BROKER))


def test_another_django_settings_module_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "someone.elses_settings")
    with pytest.raises(ConfigError, match="DJANGO_SETTINGS_MODULE must be unset or"):
        create_wsgi_app(load_django_settings(WSGI, UNUSED_BROKER))


def test_gunicorn_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_BIND", "127.0.0.1:18019")
    monkeypatch.setenv("DJANGO_WORKERS", "3")
    monkeypatch.setenv("BACKEND_KEEPALIVE_S", "90")
    monkeypatch.setenv("REDIS_URL", UNUSED_BROKER["REDIS_URL"])
    conf = runpy.run_path(str(REPO_ROOT / "services" / "django_app" / "gunicorn.conf.py"))
    assert conf["wsgi_app"] == "django_app.app:create_wsgi_app()"
    assert conf["bind"] == ["127.0.0.1:18019"]
    assert (conf["workers"], conf["threads"], conf["worker_class"]) == (3, 1, "sync")
    assert conf["keepalive"] == 90
    assert conf["timeout"] > 60  # longer than the longest bounded request (60 s stream)
    assert conf["accesslog"] is None
    assert conf["control_socket_disable"] is True
    for hook in ("on_starting", "when_ready", "child_exit"):
        assert callable(conf[hook])


def test_launcher_reports_config_errors() -> None:
    env = {**os.environ, **UNUSED_BROKER, "DJANGO_WORKERS": "x"}
    result = subprocess.run(
        [sys.executable, "-m", "django_app.serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 2
    assert "configuration error: DJANGO_WORKERS must be an integer" in result.stderr


# Both variants started for real, by their registry commands, on loopback.


@dataclass
class RunningVariant:
    variant: variants.Variant
    app_url: str
    metrics_url: str
    ws_url: str


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited: {log.read_text()[-2000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/healthz", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url}: not healthy within {START_TIMEOUT_S} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module", params=["django-gunicorn", "django-uvicorn"])
def running(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
) -> Iterator[RunningVariant]:
    variant = variants.get(request.param)
    work = tmp_path_factory.mktemp(variant.name)
    app, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        **variant.server_env(f"127.0.0.1:{app}", f"127.0.0.1:{metrics_port}"),
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        "REDIS_URL": redis_server.url,
        # Its own workers' count: one is enough here.
        f"{variant.env_prefix}_WORKERS": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = work / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *variant.command],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(f"http://127.0.0.1:{app}", process, log)
        yield RunningVariant(
            variant=variant,
            app_url=f"http://127.0.0.1:{app}",
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
            ws_url=f"ws://127.0.0.1:{app}",
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_real_server_answers_the_contract(running: RunningVariant) -> None:
    variant = running.variant
    with httpx.Client(base_url=running.app_url, timeout=30) as http:
        health = http.get("/healthz").json()
        assert (health["service"], health["framework"]) == (variant.name, "django")
        assert (health["server"], health["interface"]) == (variant.server, variant.interface)
        assert health["workers"] == 1
        io = http.get("/io", params={"ms": 5}, headers={"X-Request-ID": "real-1"})
        assert io.headers["x-request-id"] == "real-1"
        expected_mode = "time.sleep" if variant.interface == "wsgi" else "asyncio.sleep"
        assert io.json()["mode"] == expected_mode
        too_large = http.post(
            "/echo", content=b"x" * 200_000, headers={"Content-Type": "application/json"}
        )
        assert too_large.status_code == 413

        def chunks() -> Iterator[bytes]:
            yield b'{"message": '
            yield b'"chunked"}'

        echoed = http.post("/echo", content=chunks(), headers={"Content-Type": "application/json"})
        assert echoed.status_code == 200, echoed.text
        assert echoed.json()["echo"] == {"message": "chunked"}
        with http.stream("GET", "/stream", params={"events": 2, "interval_ms": 10}) as stream:
            text = "".join(stream.iter_text())
        assert text.count("event: tick") == 2
        assert text.endswith(f'event: end\ndata: {{"of":2,"service":"{variant.name}"}}\n\n')


def test_real_server_refuses_websocket_handshakes_with_a_json_404(
    running: RunningVariant,
) -> None:
    async def connect() -> None:
        async with websockets.connect(f"{running.ws_url}/ws/echo"):
            pass

    with pytest.raises(websockets.InvalidStatus) as refused:
        asyncio.run(connect())
    response = refused.value.response
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["code"] == "not_found"


def test_real_server_serves_metrics_on_its_own_port(running: RunningVariant) -> None:
    variant = running.variant
    with httpx.Client(timeout=30) as http:
        http.get(f"{running.app_url}/hello")
        text = http.get(running.metrics_url).text
        assert http.get(f"{running.app_url}/metrics").status_code == 404
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    service = {"service": variant.name, "interface": variant.interface}

    def value(name: str, **labels: str) -> float | None:
        return values.get((name, tuple(sorted({**service, **labels}.items()))))

    assert value("server_workers") == 1
    assert value("server_worker_capacity") == 1
    hello = value("http_requests_total", method="GET", route="/hello", status="200")
    assert hello is not None and hello >= 1


def _metric(metrics_url: str, name: str, labels: dict[str, str]) -> float:
    text = httpx.get(metrics_url, timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_real_server_and_a_poll_whose_client_left(running: RunningVariant) -> None:
    """Under ASGI Django cancels the view when the client leaves: the wait ends at once (499).
    A sync worker does not notice: it waits out the poll's time and answers no one (204)."""
    variant = running.variant
    status = "499" if variant.interface == "asgi" else "204"
    counted = {
        "service": variant.name,
        "interface": variant.interface,
        "method": "GET",
        "route": "/poll",
        "status": status,
    }
    before = _metric(running.metrics_url, "http_requests_total", counted)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(
            f"{running.app_url}/poll",
            params={"room": "left", "timeout_ms": 3000},
            timeout=httpx.Timeout(30, read=1.0),
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while _metric(running.metrics_url, "http_requests_total", counted) < before + 1:
        assert time.monotonic() < deadline, f"no /poll counted with status {status}"
        time.sleep(0.1)
