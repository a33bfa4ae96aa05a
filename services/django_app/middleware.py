"""Request id, metrics and the JSON request log: one middleware, sync under WSGI, async under ASGI.

Django builds its middleware chain per handler: the WSGI handler calls it synchronously, the
ASGI handler awaits it. This middleware declares both (`sync_capable`, `async_capable`), so
Django never wraps it in a thread or an event loop; it is the only one (django_settings).

A response is finished (counted, timed, logged) when it is complete: a buffered one when the
view has returned it, a streamed one when its last chunk has been produced or the stream was
closed (a client that left), like Flask's and FastAPI's middlewares. It also
does what Flask does for every response and Django leaves to others: `Content-Length` on
buffered bodies, and no body for HEAD.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase, StreamingHttpResponse

from django_app import context, routes
from gateway_common import metrics
from gateway_common.observation import finish_request
from gateway_common.request_id import REQUEST_ID_HEADER, resolve_request_id

# The header as Django's META names it (CGI style).
_REQUEST_ID_META = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
# The client left and Django cancelled the view (ASGI only): nginx's code for it.
CLIENT_CLOSED_REQUEST = 499
# Statuses that never carry a body, nor a Content-Length (RFC 9110, 8.6).
BODILESS_STATUSES = frozenset({204, 304})


@dataclass(slots=True)
class _Observation:
    """One request between its start and its finish."""

    service: str
    interface: str
    request_id: str
    method: str
    path: str
    route: str
    started: float
    series: metrics.RequestSeries
    finished: bool = False

    def finish(self, status: int) -> None:
        if self.finished:  # a closed stream may report after its last chunk did
            return
        self.finished = True
        finish_request(
            self.series,
            status,
            self.started,
            self.service,
            self.request_id,
            self.method,
            lambda: self.path,
        )


def _start(request: HttpRequest) -> _Observation:
    app_context = context.of(request)
    identity = app_context.identity
    method = request.method or ""
    route = routes.route_label(request, app_context.urlconf)
    return _Observation(
        service=identity.service,
        interface=identity.interface,
        request_id=resolve_request_id(request.META.get(_REQUEST_ID_META)),
        method=method,
        path=request.path_info,
        route=route,
        started=time.perf_counter(),
        series=metrics.request_started(identity.service, identity.interface, method, route),
    )


class _FinishingIterator:
    """A WSGI body that finishes the request at its end, or when it is closed before.

    A class, not a generator: a generator closed before its first chunk never runs its
    `finally`. Django registers `close` with the response, and the server closes the response.
    """

    def __init__(self, content: Iterable[Any], finish: Callable[[], None]) -> None:
        self._content = iter(content)
        self._finish = finish

    def __iter__(self) -> _FinishingIterator:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._content)
        except StopIteration:
            self._finish()
            raise

    def close(self) -> None:
        self._finish()


async def _finish_after_async(
    content: AsyncIterator[Any], finish: Callable[[], None]
) -> AsyncIterator[Any]:
    """An ASGI body that finishes the request at its end; a client that left cancels the send
    and the generator is closed when dropped (asyncio finalizes async generators)."""
    try:
        async for chunk in content:
            yield chunk
    finally:
        finish()


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


def _complete(response: HttpResponseBase, request: HttpRequest, observation: _Observation) -> None:
    status = response.status_code
    head = request.method == "HEAD"
    if isinstance(response, StreamingHttpResponse):
        response[REQUEST_ID_HEADER] = observation.request_id
        if head:  # the generator is never started (Flask does not start it either)
            response.streaming_content = _no_chunks() if response.is_async else iter(())
            observation.finish(status)
        elif response.is_async:
            response.streaming_content = _finish_after_async(
                response.streaming_content,  # type: ignore[arg-type]
                lambda: observation.finish(status),
            )
        else:
            response.streaming_content = _FinishingIterator(
                response.streaming_content,  # type: ignore[arg-type]
                lambda: observation.finish(status),
            )
        return
    content = getattr(response, "content", b"")
    if not response.has_header("Content-Length") and status not in BODILESS_STATUSES:
        response["Content-Length"] = str(len(content))
    response[REQUEST_ID_HEADER] = observation.request_id
    if head:
        response.content = b""  # type: ignore[attr-defined]  # Content-Length stays GET's
    observation.finish(status)


class ObservabilityMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]
    ) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._call_async(request)
        observation = _start(request)
        try:
            response = self.get_response(request)
        except BaseException:
            # Django turns the view's exceptions into responses before they get here; this is
            # the rest (a failing handler), counted as the 500 Django will answer.
            observation.finish(500)
            raise
        assert isinstance(response, HttpResponseBase)
        _complete(response, request, observation)
        return response

    async def _call_async(self, request: HttpRequest) -> HttpResponseBase:
        observation = _start(request)
        try:
            response = await self.get_response(request)  # type: ignore[misc]
        except asyncio.CancelledError:
            observation.finish(CLIENT_CLOSED_REQUEST)
            raise
        except BaseException:
            observation.finish(500)
            raise
        _complete(response, request, observation)
        return response
