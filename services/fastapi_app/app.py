"""FastAPI service (ASGI, served by Uvicorn): the contract's HTTP surface plus WebSockets.

Query parameters come in through the dependencies of `fastapi_app.params`, which check them
with `gateway_common.validation` (the Flask service uses the same code, so both answer with the
same codes and messages). Every error, FastAPI's own included, is rendered in the contract's
error shape.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp
from starlette.websockets import WebSocketDisconnect, WebSocketState

from fastapi_app.middleware import ObservabilityMiddleware, route_path
from fastapi_app.params import ChatRoom, CpuN, IoMs, PollQuery, PollRoom, Stream
from fastapi_app.settings import INTERFACE, AsgiSettings, load_asgi_settings
from gateway_common import long_poll, metrics, responses, validation, workload
from gateway_common.chat_bus import (
    BROKER_LOST,
    BrokerUnavailable,
    ChatBus,
    ChatMessage,
    Member,
    MessageTooLarge,
    new_member_id,
)
from gateway_common.errors import (
    ApiError,
    code_for_status,
    method_not_allowed_error,
    not_found_error,
)
from gateway_common.limits import WS_MAX_MESSAGE_BYTES

HOSTNAME = socket.gethostname()

# WebSocket close codes (RFC 6455).
WS_UNSUPPORTED_DATA = 1003
WS_POLICY_VIOLATION = 1008
WS_MESSAGE_TOO_BIG = 1009
WS_TRY_AGAIN_LATER = 1013
BROKER_UNAVAILABLE_REASON = "chat broker unavailable"

logger = logging.getLogger(__name__)


def _identity(settings: AsgiSettings) -> responses.ServiceIdentity:
    return responses.ServiceIdentity(
        service=settings.service,
        server=settings.server,
        interface=INTERFACE,
        workers=settings.workers,
        worker_class=settings.worker_class,
        threads=1,  # one event loop thread per worker
        framework="fastapi",
    )


def _error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error.to_body(), status_code=error.status, headers=headers)


class ObservedFastAPI(FastAPI):
    """FastAPI whose outermost layer is `ObservabilityMiddleware`, in place of Starlette's
    `ServerErrorMiddleware`.

    With debug off, that layer's one job is to answer an unhandled error with a 500. The
    observability middleware answers it itself, with the contract's body and the request id, so
    it takes that place rather than adding one more layer to every request.
    """

    def __init__(self, *, service: str, **kwargs: Any) -> None:
        self.service = service
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if not isinstance(stack, ServerErrorMiddleware):
            raise TypeError(f"expected ServerErrorMiddleware outermost, got {type(stack)!r}")
        return ObservabilityMiddleware(stack.app, service=self.service, interface=INTERFACE)


def create_app(settings: AsgiSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment's (what Uvicorn's factory call gets)."""
    settings = settings or load_asgi_settings()
    identity = _identity(settings)
    bus = ChatBus(
        settings.redis_url,
        on_state_change=lambda up: metrics.set_chat_broker_up(settings.service, INTERFACE, up),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await bus.start()
        try:
            yield
        finally:
            await bus.stop()

    app = ObservedFastAPI(
        service=settings.service,
        title="gateway-lab FastAPI service",
        version="0.1.0",
        summary="The ASGI half of gateway-lab; see docs/architecture.md.",
        lifespan=lifespan,
    )
    app.state.chat_bus = bus
    _register_error_handlers(app)
    _register_http_routes(app, identity)
    _register_websocket_routes(app, bus)
    _register_poll_routes(app, bus)
    return app


def _register_error_handlers(app: FastAPI) -> None:
    # 500s are answered by ObservabilityMiddleware, which also adds the request id.

    @app.exception_handler(ApiError)
    async def handle_api_error(connection: HTTPConnection, error: ApiError) -> JSONResponse | None:
        if isinstance(connection, WebSocket):
            # A refused WebSocket handshake (a bad chat room): answered here, not by a response.
            await _refuse_handshake(connection, error)
            return None
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_exception(
        request: Request, error: StarletteHTTPException
    ) -> JSONResponse:
        path = route_path(request.scope)
        if error.status_code == 404:
            return _error_response(not_found_error(request.method, path))
        if error.status_code == 405:
            return _error_response(method_not_allowed_error(request.method, path), error.headers)
        status = error.status_code
        return _error_response(ApiError(status, code_for_status(status), str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(
        _request: Request, error: RequestValidationError
    ) -> JSONResponse:
        # Our parameters are optional strings, so this is rare; keep the contract shape.
        first = error.errors()[0] if error.errors() else {}
        location = [str(part) for part in first.get("loc", ())]
        field = location[-1] if len(location) > 1 else None
        message = str(first.get("msg", "invalid request"))
        if location and location[0] in ("query", "path", "header"):
            return _error_response(ApiError(400, "invalid_parameter", message, field))
        return _error_response(ApiError(422, "invalid_body", message, field))


async def _read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it exceeds the contract's bound."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        validation.check_body_size(int(declared))
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        validation.check_body_size(received)
        chunks.append(chunk)
    return b"".join(chunks)


def _register_http_routes(app: FastAPI, identity: responses.ServiceIdentity) -> None:
    # Query parameters arrive validated, through the dependencies of fastapi_app.params.

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return responses.health(identity)

    @app.get("/hello")
    async def hello() -> dict[str, Any]:
        return responses.hello(identity)

    @app.get("/io", summary="Wait with asyncio.sleep (does not block the event loop)")
    async def io(wait_ms: IoMs) -> dict[str, Any]:
        waited_ms = await workload.async_wait(wait_ms)
        return responses.io_result(identity, wait_ms, waited_ms, mode="asyncio.sleep")

    @app.get("/io/blocking", summary="time.sleep inside async def: stalls the event loop")
    async def io_blocking(wait_ms: IoMs) -> dict[str, Any]:
        waited_ms = workload.blocking_wait(wait_ms)  # the anti-pattern, on purpose
        return responses.io_result(identity, wait_ms, waited_ms, mode="time.sleep")

    @app.get("/io/threadpool", summary="time.sleep in a plain def, run in the threadpool")
    def io_threadpool(wait_ms: IoMs) -> dict[str, Any]:
        waited_ms = workload.blocking_wait(wait_ms)
        return responses.io_result(identity, wait_ms, waited_ms, mode="time.sleep (threadpool)")

    @app.get("/cpu", summary="Pure-Python CPU loop (holds the event loop while it runs)")
    async def cpu(iterations: CpuN) -> dict[str, Any]:
        started = time.perf_counter()
        result = workload.cpu_work(iterations)
        return responses.cpu_result(identity, iterations, result, workload.elapsed_ms(started))

    @app.get("/stream", summary="Server-sent events", response_class=StreamingResponse)
    async def stream(params: Stream) -> StreamingResponse:
        async def generate() -> AsyncIterator[str]:
            for seq in range(1, params.events + 1):
                yield responses.sse_tick(identity, seq, params.events)
                if seq < params.events:
                    await asyncio.sleep(params.interval_ms / 1000)
            yield responses.sse_end(identity, params.events)

        return StreamingResponse(
            generate(), media_type=responses.SSE_MEDIA_TYPE, headers=responses.SSE_HEADERS
        )

    @app.post(
        "/echo",
        summary="Validate and echo a JSON document",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["message"],
                            "properties": {
                                "message": {"type": "string", "minLength": 1, "maxLength": 1000},
                                "tags": {
                                    "type": "array",
                                    "maxItems": 10,
                                    "items": {"type": "string", "minLength": 1, "maxLength": 32},
                                },
                            },
                        }
                    }
                },
            }
        },
    )
    async def echo(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type")
        validation.check_json_content_type(content_type)
        body = await _read_body(request)
        document = validation.echo_body(content_type, body)
        return responses.echo_result(identity, document)


def _too_big(message: dict[str, Any]) -> bool:
    """Over the contract's bound: the servers refuse such a message where they have a setting
    for it, the app for the one that has none (Granian) and under the test client."""
    text, data = message.get("text"), message.get("bytes")
    size = len(text.encode("utf-8")) if text is not None else len(data or b"")
    return size > WS_MAX_MESSAGE_BYTES


def _register_websocket_routes(app: FastAPI, bus: ChatBus) -> None:
    @app.websocket("/ws/echo")
    async def ws_echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if _too_big(message):
                await websocket.close(WS_MESSAGE_TOO_BIG, "message too big")
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message.get("bytes") or b"")

    @app.websocket("/ws/chat")
    async def ws_chat(websocket: WebSocket, room: ChatRoom) -> None:
        await websocket.accept()
        # Joined before the check, with no await in between: a broker loss is either seen
        # here or delivered to the member's queue, never missed.
        member = bus.join(room)
        if not bus.connected:
            bus.leave(member)
            await websocket.close(WS_TRY_AGAIN_LATER, BROKER_UNAVAILABLE_REASON)
            return
        member_id = new_member_id()
        sender: asyncio.Task[None] | None = None
        try:
            # `host` tells which replica holds the socket (Docker mode, SCALE > 1).
            joined = {"type": "joined", "room": room, "id": member_id, "host": HOSTNAME}
            await websocket.send_text(json.dumps(joined))
            sender = asyncio.create_task(_forward_room_messages(websocket, member))
            close = await _receive_chat_messages(websocket, bus, room, member_id)
        except WebSocketDisconnect:
            close = None
        finally:
            bus.leave(member)
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        # The sender may have closed the socket already (broker lost).
        if close is not None and websocket.application_state is WebSocketState.CONNECTED:
            await websocket.close(close.code, close.reason)


@dataclass(frozen=True)
class Close:
    """The close frame the server sends to end a chat socket."""

    code: int
    reason: str = ""


BROKER_UNAVAILABLE = Close(WS_TRY_AGAIN_LATER, BROKER_UNAVAILABLE_REASON)


async def _refuse_handshake(websocket: WebSocket, error: ApiError) -> None:
    """403 with the contract's error body where the server supports it, else a plain 403."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(_error_response(error))
    else:
        await websocket.close(WS_POLICY_VIOLATION)


async def _forward_room_messages(websocket: WebSocket, member: Member) -> None:
    """Send the room's messages to the client; close the socket when the broker is lost.

    The close frame ends the session: the client answers it, and the receive loop in the
    handler then sees the disconnect.
    """
    while True:
        text = await member.queue.get()
        if text is BROKER_LOST:
            await websocket.close(BROKER_UNAVAILABLE.code, BROKER_UNAVAILABLE.reason)
            return
        await websocket.send_text(text)


async def _receive_chat_messages(
    websocket: WebSocket, bus: ChatBus, room: str, member_id: str
) -> Close | None:
    """Publish each text message; return the close frame to send, None on client close."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        if message.get("text") is None:
            return Close(WS_UNSUPPORTED_DATA)
        if _too_big(message):
            return Close(WS_MESSAGE_TOO_BIG)
        envelope = ChatMessage.new(room, member_id, message["text"])
        try:
            await bus.publish(envelope.document())
        except MessageTooLarge:
            return Close(WS_MESSAGE_TOO_BIG)
        except BrokerUnavailable:
            return BROKER_UNAVAILABLE


def _poll_response(answer: long_poll.PollAnswer) -> Response:
    return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))


_POLL_MESSAGE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": validation.CHAT_TEXT_MAX_CHARS}
    },
}


def _register_poll_routes(app: FastAPI, bus: ChatBus) -> None:
    """Long polling (gateway_common.long_poll): a wait is a member of the worker's chat bus,
    so it holds no connection of its own and no thread."""

    @app.get(
        "/poll",
        summary="Wait for the next message of a chat room (204 at the timeout)",
        response_class=Response,
    )
    async def poll_wait(params: PollQuery) -> Response:
        return _poll_response(await long_poll.answer_get_async(bus, params))

    @app.post(
        "/poll",
        summary="Publish a message to a chat room (its sockets and pollers)",
        response_class=Response,
        status_code=long_poll.PUBLISHED_STATUS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _POLL_MESSAGE_SCHEMA}},
            }
        },
    )
    async def poll_publish(request: Request, room: PollRoom) -> Response:
        answer = await long_poll.answer_post_async(
            bus, room, request.headers.get("content-type"), lambda: _read_body(request)
        )
        return _poll_response(answer)
