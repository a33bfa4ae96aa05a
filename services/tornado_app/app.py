"""Tornado service: the contract's HTTP surface and WebSockets on Tornado's own server.

Neither WSGI nor ASGI: Tornado parses HTTP itself and runs the handlers on its IOLoop (asyncio).
Validation, documents, errors and metrics come from `gateway_common`, so the answers are the
FastAPI service's, byte for byte, with this variant's name in them.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.iostream import StreamClosedError
from tornado.routing import PathMatches, Rule
from tornado.web import Application, RequestHandler, stream_request_body

from gateway_common import limits, long_poll, responses, validation, workload
from gateway_common.chat_bus import ChatBus
from tornado_app import ws
from tornado_app.base import AppContext, HttpHandler, NotFoundHandler
from tornado_app.lifecycle import Lifecycle
from tornado_app.settings import FRAMEWORK, INTERFACE, TornadoSettings

# What Starlette sends for the SSE media type (text types carry their charset).
SSE_CONTENT_TYPE = f"{responses.SSE_MEDIA_TYPE}; charset=utf-8"


def identity_of(settings: TornadoSettings) -> responses.ServiceIdentity:
    return responses.ServiceIdentity(
        service=settings.service,
        server=settings.server,
        interface=INTERFACE,
        workers=settings.workers,
        worker_class=settings.worker_class,
        threads=1,  # one IOLoop thread per worker
        framework=FRAMEWORK,
    )


class HealthHandler(HttpHandler):
    async def get(self) -> None:
        self.send_json(responses.health(self.ctx.identity))


class HelloHandler(HttpHandler):
    async def get(self) -> None:
        self.send_json(responses.hello(self.ctx.identity))


class IoHandler(HttpHandler):
    """Waits with asyncio.sleep: the IOLoop serves other requests meanwhile."""

    async def get(self) -> None:
        wait_ms = validation.io_ms(self.query_values("ms"))
        waited_ms = await workload.async_wait(wait_ms)
        self.send_json(
            responses.io_result(self.ctx.identity, wait_ms, waited_ms, mode="asyncio.sleep")
        )


class CpuHandler(HttpHandler):
    """A pure-Python loop: holds the IOLoop (and its other requests) while it runs."""

    async def get(self) -> None:
        iterations = validation.cpu_n(self.query_values("n"))
        started = time.perf_counter()
        result = workload.cpu_work(iterations)
        elapsed_ms = workload.elapsed_ms(started)
        self.send_json(responses.cpu_result(self.ctx.identity, iterations, result, elapsed_ms))


class StreamHandler(HttpHandler):
    """Server-sent events, each flushed to the client as it is produced."""

    async def get(self) -> None:
        params = validation.stream_params(
            self.query_values("events"), self.query_values("interval_ms")
        )
        identity = self.ctx.identity
        self.set_header("Content-Type", SSE_CONTENT_TYPE)
        for name, value in responses.SSE_HEADERS.items():
            self.set_header(name, value)
        try:
            for seq in range(1, params.events + 1):
                self.write(responses.sse_tick(identity, seq, params.events))
                await self.flush()
                if seq < params.events:
                    await asyncio.sleep(params.interval_ms / 1000)
        except StreamClosedError:
            return  # the client left; on_connection_close has counted the request
        self.write(responses.sse_end(identity, params.events))


@stream_request_body
class BoundedBodyHandler(HttpHandler):
    """Streams the request body in and keeps only its first MAX_BODY_BYTES (+ one chunk).

    A body is refused (415, 413, ...) once it has been read to its end: a connection closed with
    request bytes still unread is reset, and the client may lose the answer.
    """

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._received = 0

    def data_received(self, chunk: bytes) -> None:
        if self._received <= validation.MAX_BODY_BYTES:
            self._chunks.append(chunk)
        self._received += len(chunk)

    def bounded_body(self) -> bytes:
        """The whole body, or the contract's 413 when it exceeds MAX_BODY_BYTES."""
        validation.check_body_size(self._received)
        return b"".join(self._chunks)


class EchoHandler(BoundedBodyHandler):
    """Validates and echoes a JSON document."""

    async def post(self) -> None:
        content_type = self.request.headers.get("Content-Type")
        validation.check_json_content_type(content_type)  # 415 whatever the size, as elsewhere
        document = validation.echo_body(content_type, self.bounded_body())
        self.send_json(responses.echo_result(self.ctx.identity, document))


class PollHandler(BoundedBodyHandler):
    """Long polling (gateway_common.long_poll): a wait is a member of the worker's chat bus, so
    it holds no connection of its own and no thread; the IOLoop serves others meanwhile."""

    _wait: asyncio.Future[long_poll.PollAnswer] | None = None
    _client_left = False

    async def get(self) -> None:
        params = validation.poll_params(self.query_values("room"), self.query_values("timeout_ms"))
        self._wait = asyncio.ensure_future(long_poll.answer_get_async(self.ctx.bus, params))
        try:
            answer = await self._wait
        except asyncio.CancelledError:
            if self._client_left:
                return  # nobody to answer; on_connection_close counted the request
            raise
        self.send_poll_answer(answer)

    async def post(self) -> None:
        room = validation.poll_room(self.query_values("room"))
        answer = await long_poll.answer_post_async(
            self.ctx.bus, room, self.request.headers.get("Content-Type"), self._read_body
        )
        self.send_poll_answer(answer)

    async def _read_body(self) -> bytes:
        return self.bounded_body()  # streamed in (data_received) before post() runs

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._client_left = True
        if self._wait is not None:
            self._wait.cancel()  # the wait leaves the room now, not at its timeout

    def send_poll_answer(self, answer: long_poll.PollAnswer) -> None:
        self.set_status(answer.status)
        for name, value in answer.headers.items():
            self.set_header(name, value)
        if answer.content_type is None:
            self.clear_header("Content-Type")  # Tornado's text/html default; a 204 has no body
        self.finish(answer.body or None)  # even an empty chunk is a body to Tornado


class WebSocketPath(PathMatches):
    """Matches WebSocket handshakes only: a plain GET of the path is a 404, as in Starlette."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        return super().match(request)


HTTP_ROUTES: tuple[tuple[str, type[HttpHandler]], ...] = (
    ("/healthz", HealthHandler),
    ("/hello", HelloHandler),
    ("/io", IoHandler),
    ("/cpu", CpuHandler),
    ("/stream", StreamHandler),
    ("/echo", EchoHandler),
    ("/poll", PollHandler),
)
WEBSOCKET_ROUTES: tuple[tuple[str, type[RequestHandler]], ...] = (
    ("/ws/echo", ws.EchoSocket),
    ("/ws/chat", ws.ChatSocket),
)


def below_root_path(path: str, root_path: str) -> str:
    """`path` without the public prefix, when it carries it (`/tornado/hello` -> `/hello`)."""
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if rest == "" or rest.startswith("/"):
            return rest or "/"
    return path


class TornadoApp(Application):
    """Routes by the path below `root_path`; the route label of each rule is its path."""

    def __init__(self, ctx: AppContext, root_path: str) -> None:
        self.root_path = root_path
        rules = [
            Rule(PathMatches(re.escape(path)), handler, {"ctx": ctx, "route": path})
            for path, handler in HTTP_ROUTES
        ] + [
            Rule(WebSocketPath(re.escape(path)), handler, {"ctx": ctx, "route": path})
            for path, handler in WEBSOCKET_ROUTES
        ]
        super().__init__(
            rules,
            default_handler_class=NotFoundHandler,
            default_handler_args={"ctx": ctx},
            websocket_max_message_size=limits.WS_SERVER_MESSAGE_LIMIT_BYTES,
            websocket_ping_interval=limits.WS_PING_INTERVAL_S,
            websocket_ping_timeout=limits.WS_PING_TIMEOUT_S,
            # The handlers log requests themselves (errors and slow ones at info, with the id).
            log_function=lambda _handler: None,
        )

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> Any:
        request.path = below_root_path(request.path, self.root_path)
        return super().find_handler(request, **kwargs)


def make_app(settings: TornadoSettings, bus: ChatBus, lifecycle: Lifecycle) -> TornadoApp:
    ctx = AppContext(identity=identity_of(settings), bus=bus, lifecycle=lifecycle)
    return TornadoApp(ctx, settings.root_path)
