"""Handler bases: the request id, the contract's JSON answers and errors, metrics and the log.

Tornado has no middleware, so what FastAPI's `ObservabilityMiddleware` does around each request
happens in these bases' hooks: `initialize` (the request has arrived), `finish` (the answer
leaves) and `on_connection_close` (the client left first).
"""

from __future__ import annotations

import http
import json
import logging
import time
from dataclasses import dataclass
from functools import cached_property
from types import TracebackType
from typing import Any

from tornado.concurrent import Future
from tornado.http1connection import HTTP1Connection
from tornado.web import HTTPError, RequestHandler

from gateway_common import metrics
from gateway_common.chat_bus import ChatBus
from gateway_common.errors import (
    ApiError,
    code_for_status,
    internal_error,
    method_not_allowed_error,
    not_found_error,
)
from gateway_common.observation import finish_request
from gateway_common.request_id import REQUEST_ID_HEADER, resolve_request_id
from gateway_common.responses import ServiceIdentity
from tornado_app.lifecycle import Lifecycle

JSON_MEDIA_TYPE = "application/json"
# The client closed its connection before the answer was sent (nginx's word for it).
CLIENT_CLOSED_REQUEST = 499

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppContext:
    """What every handler is given (Tornado passes it to `initialize`)."""

    identity: ServiceIdentity
    bus: ChatBus
    lifecycle: Lifecycle


def json_bytes(document: Any) -> bytes:
    """The bytes FastAPI's JSONResponse sends for `document`: compact UTF-8, no NaN."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
        "utf-8"
    )


class ContractHandler(RequestHandler):
    """Request id on every answer, errors in the contract's shape (HTTP and WebSocket routes)."""

    ctx: AppContext
    route: str

    def initialize(self, ctx: AppContext, route: str = metrics.UNMATCHED_ROUTE) -> None:
        self.ctx = ctx
        self.route = route

    @cached_property
    def request_id(self) -> str:
        """The first sane `X-Request-ID` of the request, else a fresh one."""
        incoming = self.request.headers.get_list(REQUEST_ID_HEADER)
        return resolve_request_id(incoming[0] if incoming else None)

    def set_default_headers(self) -> None:
        # Also called again by send_error(), which clears the headers before an error answer.
        self.clear_header("Server")  # no version banner
        self.set_header(REQUEST_ID_HEADER, self.request_id)

    def compute_etag(self) -> None:
        return None  # every answer is computed afresh: no ETag, no 304

    def query_values(self, name: str) -> list[str]:
        """Every value of a query parameter, decoded as Starlette does (bad UTF-8 replaced)."""
        return [
            raw.decode("utf-8", "replace") for raw in self.request.query_arguments.get(name, [])
        ]

    @classmethod
    def implements(cls, method: str) -> bool:
        """Whether the handler serves `method` (HEAD wherever GET is served)."""
        name = "get" if method.upper() == "HEAD" else method.lower()
        return getattr(cls, name, None) not in (None, getattr(RequestHandler, name, None))

    def allowed_methods(self) -> list[str]:
        return [method for method in self.SUPPORTED_METHODS if self.implements(method)]

    def send_json(self, document: Any) -> Future[None]:
        self.set_header("Content-Type", JSON_MEDIA_TYPE)
        return self.finish(json_bytes(document))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info is not None and isinstance(exc_info[1], ApiError):
            status_code = exc_info[1].status
        super().send_error(status_code, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        error = self._contract_error(status_code, exc_info[1] if exc_info else None)
        if error.status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.send_json(error.to_body())

    def _contract_error(self, status: int, exc: BaseException | None) -> ApiError:
        if isinstance(exc, ApiError):
            return exc
        method, path = self.request.method or "", self.request.path
        if status == 404:
            return not_found_error(method, path)
        if status == 405:
            return method_not_allowed_error(method, path)
        if status >= 500:
            return internal_error()
        message = exc.log_message if isinstance(exc, HTTPError) else None
        return ApiError(status, code_for_status(status), message or http.HTTPStatus(status).phrase)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, ApiError | HTTPError):
            return  # a client error, answered with its status and in the request log
        logger.error(
            "unhandled error",
            exc_info=(typ, value, tb),  # type: ignore[arg-type]
            extra={"fields": {"request_id": self.request_id}},
        )


class HttpHandler(ContractHandler):
    """An HTTP route: request metrics, the request log, and the drain on shutdown.

    The request is counted when its answer leaves (`finish`, before the last bytes are written,
    so a client holding the answer finds it counted), or when the client leaves first (499).
    """

    def initialize(self, ctx: AppContext, route: str = metrics.UNMATCHED_ROUTE) -> None:
        super().initialize(ctx, route)
        method = self.request.method or ""
        # A method the route does not serve is a 405 outside any route, as Flask and Starlette
        # count it.
        self.route_label = route if self.implements(method) else metrics.UNMATCHED_ROUTE
        identity = ctx.identity
        self._series = metrics.request_started(
            identity.service, identity.interface, method, self.route_label
        )
        self._started = time.perf_counter()
        self._observed = False
        ctx.lifecycle.request_started()

    async def head(self, *args: str) -> None:
        """HEAD is GET without a body (Tornado sends none), as Flask and the FastAPI service do."""
        if not self.implements("GET"):
            raise HTTPError(405)
        await self.get(*args)

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> Future[None]:
        draining = self.ctx.lifecycle.draining
        if draining:
            self.set_header("Connection", "close")
        self._observe(self.get_status())
        future = super().finish(chunk)
        connection = self.request.connection
        if draining and isinstance(connection, HTTP1Connection):
            # Shutting down: no further request on this connection, once the answer is out.
            future.add_done_callback(lambda _: connection.close())
        return future

    def on_connection_close(self) -> None:
        self._observe(CLIENT_CLOSED_REQUEST)

    def _observe(self, status: int) -> None:
        if self._observed:
            return
        self._observed = True
        finish_request(
            self._series,
            status,
            self._started,
            self.ctx.identity.service,
            self.request_id,
            self.request.method or "",
            lambda: self.request.path,
        )
        self.ctx.lifecycle.request_finished()


class NotFoundHandler(HttpHandler):
    """Every path no route matches (the application's default handler)."""

    def prepare(self) -> None:
        raise HTTPError(404)
