"""WSGI middleware around the Flask app: request id, metrics and the request log.

A middleware rather than Flask's request hooks: three hooks, the `g` proxy, a werkzeug header
set and a close callback cost more per request than the work they carry. The route label is the
matched rule's template, found before the request runs so the in-progress gauge has the final
label: a matched (method, path) is remembered (a bounded cache: unmatched paths are never
stored, so junk paths cannot fill it), and only a path not seen yet is matched against the
app's URL map here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map

from flask_app.settings import INTERFACE
from gateway_common import metrics
from gateway_common.observation import finish_request
from gateway_common.request_id import REQUEST_ID_HEADER, resolve_request_id

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The WSGI environ key of the incoming header (PEP 3333: HTTP_ + upper case, - as _).
_REQUEST_ID_ENVIRON_KEY = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
# Distinct (method, path) keys of matched routes; beyond it, matching runs uncached.
ROUTE_CACHE_SIZE = 1024


def decoded_path(environ: WSGIEnvironment) -> str:
    """The request path as Flask's `request.path` has it (PATH_INFO is latin-1 per PEP 3333)."""
    raw: str = environ.get("PATH_INFO") or "/"
    return raw.encode("latin-1").decode("utf-8", "replace")


class _Body:
    """The app's response body; closing it (the server does, after the last chunk) finishes
    the request, so a streamed response is timed to its end, not to its headers."""

    __slots__ = ("_body", "_finish")

    def __init__(self, body: Iterable[bytes], finish: Callable[[], None]) -> None:
        self._body = body
        self._finish = finish

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()


class ObservabilityMiddleware:
    def __init__(self, app: WSGIApplication, url_map: Map, service: str) -> None:
        self.app = app
        self.service = service
        # Host matching is off: only the path and the method select a rule.
        self._adapter = url_map.bind("localhost")
        self._series: dict[tuple[str, str], metrics.RequestSeries] = {}

    def _route(self, environ: WSGIEnvironment, method: str) -> str:
        """The template of the rule the app will match, else `<unmatched>`."""
        try:
            rule, _ = self._adapter.match(decoded_path(environ), method, return_rule=True)
        except HTTPException:  # 404, 405, a redirect: the app answers it, unmatched
            return metrics.UNMATCHED_ROUTE
        return str(rule.rule)

    def _request_series(self, environ: WSGIEnvironment, method: str) -> metrics.RequestSeries:
        """The request's metric series, remembered per (method, path) once the path matched:
        a known request costs one lookup."""
        key = (method, environ.get("PATH_INFO") or "/")
        series = self._series.get(key)
        if series is None:
            route = self._route(environ, method)
            series = metrics.request_series(self.service, INTERFACE, method, route)
            if route != metrics.UNMATCHED_ROUTE and len(self._series) < ROUTE_CACHE_SIZE:
                self._series[key] = series
        return series

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = resolve_request_id(environ.get(_REQUEST_ID_ENVIRON_KEY))
        method: str = environ.get("REQUEST_METHOD") or "GET"
        series = self._request_series(environ, method)
        # True in a threaded worker (gthread): then the sample writes take a lock.
        threaded: bool = environ.get("wsgi.multithread", True)
        series.started(threaded=threaded)
        started = time.perf_counter()
        status = 500  # when the app fails before answering, the server answers 500

        def start_with_request_id(
            status_line: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
        ) -> Callable[[bytes], object]:
            nonlocal status
            status = int(status_line[:3])
            # The app never sets X-Request-ID itself: appending is all a header set would do.
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status_line, headers, exc_info)

        def finish() -> None:
            finish_request(
                series,
                status,
                started,
                self.service,
                request_id,
                method,
                lambda: decoded_path(environ),
                threaded,
            )

        try:
            body = self.app(environ, start_with_request_id)
        except BaseException:
            # Error handling itself failed (Flask answers errors with the contract's JSON).
            status = 500
            finish()
            raise
        return _Body(body, finish)
