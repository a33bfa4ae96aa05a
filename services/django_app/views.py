"""The views of the contract, and Django's error handlers (400, 404, 500) in its error shape.

Each view takes the request and its entry point's context (identity, broker) and returns a
response. Which of them runs under which interface is `django_app.routes`'s business; the
waiting views come in two flavours here (`time.sleep`, a blocking Redis wait / `asyncio.sleep`,
the worker's chat bus), the others are plain functions that never wait.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from django_app.context import AppContext
from gateway_common import long_poll, responses, validation, workload
from gateway_common.errors import ApiError, code_for_status, internal_error, not_found_error

JSON_MEDIA_TYPE = "application/json"
# Flask and Starlette add the charset to text/* media types; the same header here.
SSE_CONTENT_TYPE = f"{responses.SSE_MEDIA_TYPE}; charset=utf-8"


def json_response(
    document: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    """The bytes Flask sends: compact JSON, UTF-8 as is, the contract's key order, a newline."""
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"
    return HttpResponse(
        body.encode("utf-8"), status=status, content_type=JSON_MEDIA_TYPE, headers=headers
    )


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> HttpResponse:
    return json_response(error.to_body(), error.status, headers)


def healthz(request: HttpRequest, app: AppContext) -> HttpResponse:
    return json_response(responses.health(app.identity))


def hello(request: HttpRequest, app: AppContext) -> HttpResponse:
    return json_response(responses.hello(app.identity))


def io_blocking(request: HttpRequest, app: AppContext) -> HttpResponse:
    """`time.sleep`: holds the worker (or its thread) while it waits."""
    ms = validation.io_ms(request.GET.getlist("ms"))
    waited_ms = workload.blocking_wait(ms)
    return json_response(responses.io_result(app.identity, ms, waited_ms, mode="time.sleep"))


async def io_async(request: HttpRequest, app: AppContext) -> HttpResponse:
    """`asyncio.sleep`: the event loop serves other requests while this one waits."""
    ms = validation.io_ms(request.GET.getlist("ms"))
    waited_ms = await workload.async_wait(ms)
    return json_response(responses.io_result(app.identity, ms, waited_ms, mode="asyncio.sleep"))


def cpu(request: HttpRequest, app: AppContext) -> HttpResponse:
    n = validation.cpu_n(request.GET.getlist("n"))
    started = time.perf_counter()
    result = workload.cpu_work(n)
    return json_response(
        responses.cpu_result(app.identity, n, result, workload.elapsed_ms(started))
    )


def _stream_params(request: HttpRequest) -> validation.StreamParams:
    return validation.stream_params(
        request.GET.getlist("events"), request.GET.getlist("interval_ms")
    )


def _sse_response(events: Iterator[str] | AsyncIterator[str]) -> StreamingHttpResponse:
    return StreamingHttpResponse(
        events, content_type=SSE_CONTENT_TYPE, headers=responses.SSE_HEADERS
    )


def stream_blocking(request: HttpRequest, app: AppContext) -> StreamingHttpResponse:
    """Server-sent events from a plain generator: the worker sleeps between events."""
    params = _stream_params(request)
    identity = app.identity

    def events() -> Iterator[str]:
        for seq in range(1, params.events + 1):
            yield responses.sse_tick(identity, seq, params.events)
            if seq < params.events:
                time.sleep(params.interval_ms / 1000)
        yield responses.sse_end(identity, params.events)

    return _sse_response(events())


async def stream_async(request: HttpRequest, app: AppContext) -> StreamingHttpResponse:
    """Server-sent events from an async generator: the event loop waits between events."""
    params = _stream_params(request)
    identity = app.identity

    async def events() -> AsyncIterator[str]:
        for seq in range(1, params.events + 1):
            yield responses.sse_tick(identity, seq, params.events)
            if seq < params.events:
                await asyncio.sleep(params.interval_ms / 1000)
        yield responses.sse_end(identity, params.events)

    return _sse_response(events())


def _read_body(request: HttpRequest) -> bytes:
    """The body, refused with 413 past the contract's bound.

    A declared `Content-Length` over the bound is refused before reading. Otherwise at most one
    byte over the bound is read: enough to tell a body that is too large. Under ASGI the body
    was read before the view, and `django_app.asgi_front` has already cut it at that length.
    Under WSGI Django reads `Content-Length` bytes and treats a chunked body (no
    `Content-Length`) as empty; Gunicorn marks such a body as terminated, so it is read from
    the WSGI input directly, bounded the same way.
    """
    declared = request.META.get("CONTENT_LENGTH", "")
    if declared.isdigit():
        validation.check_body_size(int(declared))
    limit = validation.MAX_BODY_BYTES + 1
    if (
        isinstance(request, WSGIRequest)
        and "CONTENT_LENGTH" not in request.META
        and request.META.get("wsgi.input_terminated")
    ):
        body = bytes(request.META["wsgi.input"].read(limit))
    else:
        body = request.read(limit)
    validation.check_body_size(len(body))
    return body


def _content_type(request: HttpRequest) -> str | None:
    content_type: str | None = request.META.get("CONTENT_TYPE")
    return content_type


def echo(request: HttpRequest, app: AppContext) -> HttpResponse:
    content_type = _content_type(request)
    validation.check_json_content_type(content_type)  # 415 before reading
    document = validation.echo_body(content_type, _read_body(request))
    return json_response(responses.echo_result(app.identity, document))


# Long polling (gateway_common.long_poll): GET waits for a room's next message, POST publishes.


def _poll_response(answer: long_poll.PollAnswer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status, headers=dict(answer.headers))
    if answer.content_type is None:
        del response["Content-Type"]  # Django's text/html default; a 204 has no body
    return response


def poll_blocking(request: HttpRequest, app: AppContext) -> HttpResponse:
    """A wait subscribes to the room on a connection of its own and holds the worker."""
    if request.method == "POST":
        room = validation.poll_room(request.GET.getlist("room"))
        answer = long_poll.answer_post_sync(
            app.redis_url, room, _content_type(request), lambda: _read_body(request)
        )
    else:
        params = validation.poll_params(
            request.GET.getlist("room"), request.GET.getlist("timeout_ms")
        )
        answer = long_poll.answer_get_sync(app.redis_url, params)
    return _poll_response(answer)


async def poll_async(request: HttpRequest, app: AppContext) -> HttpResponse:
    """A wait is a member of the worker's chat bus: no connection of its own, no thread."""
    bus = app.chat_bus
    if bus is None:  # the ASGI entry point always has one; said for the type checker
        raise RuntimeError("the ASGI entry point runs without its chat bus")
    if request.method == "POST":
        room = validation.poll_room(request.GET.getlist("room"))

        async def read_body() -> bytes:
            return _read_body(request)  # already in memory (asgi_front): nothing to wait for

        answer = await long_poll.answer_post_async(bus, room, _content_type(request), read_body)
    else:
        params = validation.poll_params(
            request.GET.getlist("room"), request.GET.getlist("timeout_ms")
        )
        answer = await long_poll.answer_get_async(bus, params)
    return _poll_response(answer)


# Django's error handlers (named in each URL table as handler400/404/500). Errors the views
# raise themselves (ApiError) are answered by `django_app.routes`, without Django's handling.


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """A request Django refuses to read (SuspiciousOperation: too many fields, ...)."""
    return error_response(ApiError(400, code_for_status(400), "bad request"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(not_found_error(request.method or "GET", request.path_info))


def server_error(request: HttpRequest) -> HttpResponse:
    """An unhandled exception; Django has logged it (django.request) with its traceback."""
    return error_response(internal_error())
