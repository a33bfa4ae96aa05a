"""Unit-test setup: metrics in multiprocess mode, the apps, one client interface.

PROMETHEUS_MULTIPROC_DIR is set here at import time, before anything imports
prometheus_client (it picks its mode at import). The apps are built from settings read from an
empty environment (`DEFAULT_ENV`), so they see the contract's defaults whatever the shell has
set. The FastAPI app's chat broker is a real redis-server, started once per session on a free
loopback port (`redis_server`). The Tornado app has no in-process test client: its own server
runs on a free loopback port, in a thread (`tornado_server`). The Django project runs through
both of its entry points: WSGI under werkzeug's test client, ASGI under Starlette's TestClient.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Always a fresh directory: never write into a running service's metrics directory.
_MULTIPROC_DIR = tempfile.mkdtemp(prefix="gateway-lab-prom-")
atexit.register(shutil.rmtree, _MULTIPROC_DIR, ignore_errors=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _MULTIPROC_DIR

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from service_clients import BROKER_CONNECT_TIMEOUT_S, ServiceClient, start_fastapi_client  # noqa: E402
from tornado_server import TornadoServer  # noqa: E402
from werkzeug.test import Client as WsgiClient  # noqa: E402

from django_app.app import create_asgi_app as create_django_asgi_app  # noqa: E402
from django_app.app import create_wsgi_app as create_django_wsgi_app  # noqa: E402
from django_app.settings_env import ASGI, WSGI, load_django_settings  # noqa: E402
from fastapi_app.settings import load_asgi_settings  # noqa: E402
from flask_app.app import create_app as create_flask_app  # noqa: E402
from flask_app.settings import load_wsgi_settings  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tornado_app.settings import load_tornado_settings  # noqa: E402

#: The environment the apps' settings are read from: nothing set, every default. (The apps' one
#: required variable, REDIS_URL, is added per test: `service_env`.)
DEFAULT_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The running test server's URL, as the app under test takes it in REDIS_URL."""
    if not redis_server.running:
        redis_server.start()  # a test stopped it (a broker outage)
    return redis_server.url


@pytest.fixture
def service_env(redis_url: str) -> dict[str, str]:
    """Every default, plus the test broker: what both apps' settings are read from."""
    return {**DEFAULT_ENV, "REDIS_URL": redis_url}


@pytest.fixture
def fastapi_env(service_env: dict[str, str]) -> dict[str, str]:
    return service_env


@pytest.fixture
def flask_client(service_env: dict[str, str]) -> ServiceClient:
    return ServiceClient("flask", create_flask_app(load_wsgi_settings(service_env)).test_client())


@pytest.fixture
def fastapi_test_client(fastapi_env: dict[str, str]) -> Iterator[TestClient]:
    # Entering the client runs the lifespan (chat bus start); leaving it stops the bus.
    client = start_fastapi_client(
        load_asgi_settings(environ=fastapi_env), raise_server_exceptions=False
    )
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


@pytest.fixture
def fastapi_client(fastapi_test_client: TestClient) -> ServiceClient:
    return ServiceClient(
        "fastapi",
        fastapi_test_client,
        chat_bus=fastapi_test_client.app.state.chat_bus,  # type: ignore[attr-defined]
    )


@pytest.fixture
def tornado_server(fastapi_env: dict[str, str]) -> Iterator[TornadoServer]:
    """The Tornado app on its own server (same defaults and broker as the FastAPI app)."""
    server = TornadoServer(load_tornado_settings(environ=fastapi_env))
    server.start(BROKER_CONNECT_TIMEOUT_S)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tornado_client(tornado_server: TornadoServer) -> Iterator[ServiceClient]:
    with httpx.Client(base_url=tornado_server.url, timeout=30) as http:
        yield ServiceClient("tornado", http, chat_bus=tornado_server.worker.bus)


@pytest.fixture
def django_gunicorn_client(service_env: dict[str, str]) -> ServiceClient:
    """The Django project's WSGI entry point, as Gunicorn runs it (variant django-gunicorn)."""
    app = create_django_wsgi_app(load_django_settings(WSGI, service_env))
    return ServiceClient("django-gunicorn", WsgiClient(app))


@pytest.fixture
def django_uvicorn_test_client(service_env: dict[str, str]) -> Iterator[TestClient]:
    """The Django project's ASGI entry point, as Uvicorn runs it (variant django-uvicorn);
    entering the client runs its lifespan, which starts the chat bus."""
    app = create_django_asgi_app(load_django_settings(ASGI, service_env))
    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        if not client.portal.call(app.chat_bus.wait_connected, BROKER_CONNECT_TIMEOUT_S):
            raise RuntimeError("the chat bus did not connect to the test redis-server")
        yield client


@pytest.fixture
def django_uvicorn_client(django_uvicorn_test_client: TestClient) -> ServiceClient:
    bus = django_uvicorn_test_client.app.chat_bus  # type: ignore[attr-defined]
    return ServiceClient("django-uvicorn", django_uvicorn_test_client, chat_bus=bus)


@pytest.fixture(params=["flask", "fastapi", "tornado", "django_gunicorn", "django_uvicorn"])
def client(request: pytest.FixtureRequest) -> ServiceClient:
    """Each test using it runs against every service (Django through both entry points)."""
    return request.getfixturevalue(f"{request.param}_client")
