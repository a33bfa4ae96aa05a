"""What stands in front of Django's ASGI handler: the body's bound, lifespan, WebSockets.

Django's `ASGIHandler` serves HTTP only and raises on anything else, and it reads the whole
request body (to memory, then to a temporary file) before any view runs. In front of it:

- HTTP: the body reaches Django cut one byte past the contract's bound, so `/echo` can tell it
  is too large (413) without the server storing the rest; a declared `Content-Length` over
  the bound is not read at all (the view refuses it from the header). The same bound Flask
  sets with MAX_CONTENT_LENGTH.
- lifespan: starts and stops the worker's chat bus (its one Redis subscription, which `/poll`
  waits join); Django itself has nothing to start (no database).
- WebSocket: not served (no Channels). The handshake is refused with the contract's 404
  body where the server supports denial responses (Uvicorn does), else closed (a plain 403).
  Through nginx a handshake never gets here: nginx forwards `Upgrade` only to variants that
  serve WebSockets, so Django answers a plain GET with its 404. Sent straight to Uvicorn, the
  denial reaches the client intact, but Uvicorn's websockets-sansio protocol then logs
  "ASGI callable returned without completing handshake" at error (Kludex/uvicorn#3138).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway_common import metrics, validation
from gateway_common.chat_bus import ChatBus
from gateway_common.errors import not_found_error
from gateway_common.logging import log_request
from gateway_common.request_id import REQUEST_ID_HEADER, resolve_request_id
from gateway_common.responses import ServiceIdentity

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")  # ASGI header names: lower bytes
DENIAL_EXTENSION = "websocket.http.response"
WS_POLICY_VIOLATION = 1008  # closing before accepting: the server answers 403


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _route_path(scope: Scope) -> str:
    """The path below the root path (`/django-uvicorn` behind nginx), as Django's path_info."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        return path[len(root_path) :] or "/"
    return path


def bounded_receive(scope: Scope, receive: Receive, limit: int) -> Receive:
    """`receive` whose body ends after `limit` bytes, or at once when the declared length is
    over `limit`. A body cut short is never read further: past the end of the body Django
    only waits for `http.disconnect` (more body there fails its check), and it cancels that
    wait when its response is done.
    """
    declared = _header(scope, b"content-length") or ""
    cut = declared.isdigit() and int(declared) > limit
    end_sent = False
    received = 0

    async def bounded() -> Message:
        nonlocal cut, end_sent, received
        if cut:
            if not end_sent:
                end_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            never: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
            return await never
        message = await receive()
        if message["type"] == "http.request":
            body: bytes = message.get("body", b"")
            received += len(body)
            if received > limit:
                cut = end_sent = True
                kept = body[: len(body) - (received - limit)]
                return {"type": "http.request", "body": kept, "more_body": False}
        return message

    return bounded


class DjangoAsgiFront:
    """The ASGI application Uvicorn runs: Django for HTTP, the rest answered here."""

    def __init__(self, django: AsgiApp, identity: ServiceIdentity, chat_bus: ChatBus) -> None:
        self.django = django
        self.identity = identity
        self.chat_bus = chat_bus

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            limit = validation.MAX_BODY_BYTES + 1
            await self.django(scope, bounded_receive(scope, receive, limit), send)
        elif kind == "websocket":
            await self._refuse_websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"unsupported ASGI scope type {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Returns at once: the bus connects (and reconnects) in the background.
                await self.chat_bus.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.chat_bus.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The handshake gets the 404 any unknown path gets; counted and logged as one."""
        started = time.perf_counter()
        identity = self.identity
        request_id = resolve_request_id(_header(scope, _REQUEST_ID_KEY))
        path = _route_path(scope)
        route = metrics.UNMATCHED_ROUTE
        series = metrics.request_started(identity.service, identity.interface, "GET", route)
        await receive()  # websocket.connect
        if DENIAL_EXTENSION in scope.get("extensions", {}):
            error = not_found_error("GET", path)
            body = (json.dumps(error.to_body(), separators=(",", ":")) + "\n").encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (_REQUEST_ID_KEY, request_id.encode("latin-1")),
            ]
            status = error.status
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            status = 403
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
        duration_s = time.perf_counter() - started
        series.finished(status, duration_s)
        log_request(
            service=identity.service,
            request_id=request_id,
            method="GET",
            path=path,
            route=route,
            status=status,
            duration_s=duration_s,
            level=logging.INFO,
        )
