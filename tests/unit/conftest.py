"""Unit-test setup: metrics in multiprocess mode, both apps, one client interface.

PROMETHEUS_MULTIPROC_DIR is set here at import time, before anything imports
prometheus_client (it picks its mode at import). Server variables are cleared so the
apps see the contract's defaults. The FastAPI app's chat broker is a real redis-server,
started once per session on a free loopback port (`redis_server`).
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
for _name in (
    "REDIS_URL",
    "WSGI_BIND",
    "WSGI_WORKERS",
    "WSGI_THREADS",
    "WSGI_WORKER_CLASS",
    "WSGI_METRICS_BIND",
    "WSGI_PROXY_COUNT",
    "ASGI_BIND",
    "ASGI_WORKERS",
    "ASGI_METRICS_BIND",
    "ASGI_ROOT_PATH",
    "FORWARDED_ALLOW_IPS",
    "BACKEND_KEEPALIVE_S",
    "LOG_LEVEL",
):
    os.environ.pop(_name, None)

import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from service_clients import ServiceClient, start_fastapi_client  # noqa: E402

from flask_app.app import create_app as create_flask_app  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """REDIS_URL set for the app under test, pointing at the running test server."""
    if not redis_server.running:
        redis_server.start()  # a test stopped it (a broker outage)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return redis_server.url


@pytest.fixture
def flask_client() -> ServiceClient:
    return ServiceClient("flask", create_flask_app().test_client())


@pytest.fixture
def fastapi_test_client(redis_url: str) -> Iterator[TestClient]:
    # Entering the client runs the lifespan (chat bus start); leaving it stops the bus.
    client = start_fastapi_client(raise_server_exceptions=False)
    try:
        yield client
    finally:
        client.__exit__(None, None, None)


@pytest.fixture
def fastapi_client(fastapi_test_client: TestClient) -> ServiceClient:
    return ServiceClient("fastapi", fastapi_test_client)


@pytest.fixture(params=["flask", "fastapi"])
def client(request: pytest.FixtureRequest) -> ServiceClient:
    """Each test using it runs against both services."""
    return request.getfixturevalue(f"{request.param}_client")
