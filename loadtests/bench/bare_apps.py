"""The bare apps `make bench-overhead` measures the services against.

Each answers `/hello` with the same body as its service and nothing else: no request id, no
metrics, no request log, no error handlers. Each also has the service's route in front of
`/hello` (`/healthz`, registered first): FastAPI tries routes in order, and finding the route is
the framework's cost, not the instrumentation's. They are served by the services' own launchers
(Gunicorn with `gunicorn.conf.py`, `fastapi_app.serve`), so the server settings are the same
and the throughput gap is what the instrumentation costs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from flask import Flask

from fastapi_app.settings import INTERFACE as ASGI_INTERFACE
from fastapi_app.settings import SERVICE as ASGI_SERVICE
from flask_app.settings import INTERFACE as WSGI_INTERFACE
from flask_app.settings import SERVICE as WSGI_SERVICE
from gateway_common import responses


def _identity(service: str, interface: str) -> responses.ServiceIdentity:
    # Only `service` reaches the /hello body; the rest is there to build the same document.
    return responses.ServiceIdentity(service, "", interface, 0, "", 0, "")


def create_flask() -> Flask:
    identity = _identity(WSGI_SERVICE, WSGI_INTERFACE)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # the service's settings too
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    @app.get("/healthz")
    def healthz() -> Any:
        return responses.health(identity)

    @app.get("/hello")
    def hello() -> Any:
        return responses.hello(identity)

    return app


def create_fastapi() -> FastAPI:
    identity = _identity(ASGI_SERVICE, ASGI_INTERFACE)
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return responses.health(identity)

    @app.get("/hello")
    async def hello() -> dict[str, Any]:
        return responses.hello(identity)

    return app
