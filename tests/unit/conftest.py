"""Unit-test setup: metrics in multiprocess mode, both apps, one client interface.

PROMETHEUS_MULTIPROC_DIR is set here at import time, before anything imports
prometheus_client (it picks its mode at import). Server variables are cleared so the
apps see the contract's defaults; CHAT_BUS_DIR stays unset: chat runs in-process.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

# Always a fresh directory: never write into a running service's metrics directory.
_MULTIPROC_DIR = tempfile.mkdtemp(prefix="gateway-lab-prom-")
atexit.register(shutil.rmtree, _MULTIPROC_DIR, ignore_errors=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _MULTIPROC_DIR
for _name in (
    "CHAT_BUS_DIR",
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
from service_clients import ServiceClient  # noqa: E402

from fastapi_app.app import create_app as create_fastapi_app  # noqa: E402
from flask_app.app import create_app as create_flask_app  # noqa: E402


@pytest.fixture
def flask_client() -> ServiceClient:
    return ServiceClient("flask", create_flask_app().test_client())


@pytest.fixture
def fastapi_test_client() -> Iterator[TestClient]:
    # The context manager runs the lifespan (chat bus start/stop).
    with TestClient(create_fastapi_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def fastapi_client(fastapi_test_client: TestClient) -> ServiceClient:
    return ServiceClient("fastapi", fastapi_test_client)


@pytest.fixture(params=["flask", "fastapi"])
def client(request: pytest.FixtureRequest) -> ServiceClient:
    """Each test using it runs against both services."""
    return request.getfixturevalue(f"{request.param}_client")
