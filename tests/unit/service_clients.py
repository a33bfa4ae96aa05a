"""One client interface over werkzeug's test client (WSGI apps: Flask, Django under WSGI),
Starlette's TestClient (ASGI apps: FastAPI, Django under ASGI) and httpx (Tornado).

A module of its own (not conftest.py) so tests import it by a unique name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from werkzeug.test import Client as WsgiClient

from fastapi_app.app import create_app as create_fastapi_app
from fastapi_app.settings import AsgiSettings
from gateway_common.chat_bus import ChatBus

BROKER_CONNECT_TIMEOUT_S = 10.0  # a bound against hanging, not a speed requirement


@dataclass
class Answer:
    """A response, whichever test client produced it."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class ServiceClient:
    """Same calls for werkzeug's test client (Flask's is one), Starlette's TestClient and an
    httpx.Client (which TestClient is too). `service` is the variant's name."""

    def __init__(self, service: str, raw: Any, chat_bus: ChatBus | None = None) -> None:
        self.service = service
        self.raw = raw
        # The app's chat bus when it runs one (FastAPI, Tornado): tests count its members.
        self.chat_bus = chat_bus

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if isinstance(self.raw, WsgiClient):
            # buffered: the WSGI response is closed, as a server does, which finishes
            # the request's metrics and log line.
            response = self.raw.open(
                path, method=method, data=body, headers=headers or {}, buffered=True
            )
            return Answer(response.status_code, response.headers, response.get_data())
        response = self.raw.request(method, path, content=body, headers=headers)
        return Answer(response.status_code, response.headers, response.content)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("GET", path, headers=headers)

    def post_json(self, path: str, document: Any, content_type: str = "application/json") -> Answer:
        body = json.dumps(document).encode()
        return self.request("POST", path, body=body, headers={"Content-Type": content_type})


def start_fastapi_client(settings: AsgiSettings, **options: object) -> TestClient:
    """A TestClient of an app built from `settings`, whose lifespan has run and whose chat bus
    is subscribed."""
    client = TestClient(create_fastapi_app(settings), **options)  # type: ignore[arg-type]
    client.__enter__()
    bus = client.app.state.chat_bus  # type: ignore[attr-defined]
    if not client.portal.call(bus.wait_connected, BROKER_CONNECT_TIMEOUT_S):
        client.__exit__(None, None, None)
        raise RuntimeError("the chat bus did not connect to the test redis-server")
    return client
