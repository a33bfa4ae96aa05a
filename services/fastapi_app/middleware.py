"""Pure ASGI middleware: request id, metrics and the JSON request log.

Not `BaseHTTPMiddleware`: that one buffers through an extra task and breaks streaming. It is the
app's outermost layer, in place of Starlette's `ServerErrorMiddleware` (`app.ObservedFastAPI`).
The route label is the matched route's path template, found with the router's own
`matches()` before the request runs, so the in-progress gauge has the final label. Matching
depends only on the scope's type, method and paths (the app has no `Host` routes), so a
matched template is remembered per those (a bounded cache: unmatched paths are never stored,
so junk paths cannot fill it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_common import metrics
from gateway_common.errors import internal_error
from gateway_common.logging import log_request
from gateway_common.observation import finish_request
from gateway_common.request_id import REQUEST_ID_HEADER, resolve_request_id

logger = logging.getLogger(__name__)


def route_path(scope: Scope) -> str:
    """The request path below the app's root path (``/asgi`` behind nginx), as routes see it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if rest == "" or rest.startswith("/"):
            return rest
    return path


# ASGI header names are lower-case bytes.
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")


def incoming_request_id(scope: Scope) -> str:
    """The request's id: its sane `X-Request-ID` (the first one), else a fresh one.

    A plain scan of the raw headers: building `Headers` decodes every header of every request.
    """
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_KEY:
            return resolve_request_id(value.decode("latin-1"))
    return resolve_request_id(None)


# Distinct (type, method, path) keys of matched routes; beyond it, matching runs uncached.
ROUTE_CACHE_SIZE = 1024


def route_template(scope: Scope) -> str:
    """The path template of the route that fully matches `scope`, else `<unmatched>`."""
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", ()):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(route.path)
    return metrics.UNMATCHED_ROUTE


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, service: str, interface: str) -> None:
        self.app = app
        self.service = service
        self.interface = interface
        self._routes: dict[tuple[str, str, str, str], str] = {}
        self._series: dict[tuple[str, str, str], metrics.RequestSeries] = {}

    def _request_series(self, scope: Scope, method: str) -> metrics.RequestSeries:
        """The HTTP request's metric series, remembered per (method, root path, path) once the
        path matched: a known request costs one lookup. `scope` is the one the routes see."""
        key = (method, scope.get("root_path", ""), scope["path"])
        series = self._series.get(key)
        if series is None:
            route = route_template(scope)
            series = metrics.request_series(self.service, self.interface, method, route)
            if route != metrics.UNMATCHED_ROUTE and len(self._series) < ROUTE_CACHE_SIZE:
                self._series[key] = series
        return series

    def _route(self, scope: Scope, method: str) -> str:
        key = (scope["type"], method, scope.get("root_path", ""), scope["path"])
        route = self._routes.get(key)
        if route is None:
            route = route_template(scope)
            if route != metrics.UNMATCHED_ROUTE and len(self._routes) < ROUTE_CACHE_SIZE:
                self._routes[key] = route
        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # HTTP requests are served here rather than in a method of their own: one coroutine
        # fewer per request.
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        request_id_header = (_REQUEST_ID_KEY, request_id.encode("latin-1"))
        method = scope["method"]
        is_head = method == "HEAD"
        if is_head:
            # FastAPI routes answer only their declared methods; Flask (like HTTP itself)
            # serves HEAD as GET without a body. Do the same here (a copy: the server's
            # scope must keep HEAD, so it also sends no body).
            scope = {**scope, "method": "GET"}
        series = self._request_series(scope, method)
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                # A new list: the app's own header list is left as it was. The app never sets
                # X-Request-ID itself, so appending is all MutableHeaders would do.
                message = {**message, "headers": [*message.get("headers", ()), request_id_header]}
            elif is_head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # One event loop thread writes this process's request samples: no lock needed.
        series.started(threaded=False)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            # Unhandled: answer with the contract's 500 and the request id (this layer stands
            # in for Starlette's ServerErrorMiddleware, see `ObservedFastAPI`); once the
            # response has started there is nothing left to fix, and the server cuts it off.
            logger.exception("unhandled error", extra={"fields": {"request_id": request_id}})
            status = 500
            if response_started:
                raise
            await self._send_internal_error(send, request_id)
        finally:
            finish_request(
                series,
                status,
                started,
                self.service,
                request_id,
                method,
                lambda: route_path(scope),
                threaded=False,
            )

    @staticmethod
    async def _send_internal_error(send: Send, request_id: str) -> None:
        error = internal_error()
        body = json.dumps(error.to_body(), separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (_REQUEST_ID_KEY, request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Connection gauge, message counters, and one log line per WebSocket session.

        The logged status is the handshake's: 101 accepted, 403 (or the denial's) refused.
        Sessions are logged at info: one line per connection, not per message.
        """
        request_id = incoming_request_id(scope)
        route = self._route(scope, "GET")
        started = time.perf_counter()
        status = 403  # closing before accepting refuses the handshake with 403
        accepted = False
        labels = (self.service, self.interface, route)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive":
                metrics.websocket_message(*labels, "in")
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, accepted
            message_type = message["type"]
            if message_type == "websocket.accept":
                headers: list[Any] = list(message.get("headers", []))
                headers.append((_REQUEST_ID_KEY, request_id.encode()))
                message = {**message, "headers": headers}
            elif message_type == "websocket.http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)
            if message_type == "websocket.accept":
                status, accepted = 101, True
                metrics.websocket_opened(*labels)
            elif message_type == "websocket.send":
                metrics.websocket_message(*labels, "out")

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            if accepted:
                metrics.websocket_closed(*labels)
            duration_s = time.perf_counter() - started
            log_request(
                service=self.service,
                request_id=request_id,
                method="GET",
                path=route_path(scope),
                route=route,
                status=status,
                duration_s=duration_s,
                level=logging.INFO,
            )
