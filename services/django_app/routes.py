"""The route table, rendered as one URL table per interface: plain views for WSGI, async for ASGI.

Django decides how to run a view from how the view is written, whatever the server:

- under ASGI, an `async def` view runs on the worker's event loop; a plain `def` view is
  handed to a thread (`sync_to_async`; each request gets a thread of its own);
- under WSGI, a plain `def` view runs in the worker's thread; an `async def` view runs through
  `async_to_sync`: an event loop started for the request in another thread, while the worker
  waits for it. Its `asyncio.sleep` then holds the worker exactly as `time.sleep` would, plus
  the cost of the loop.

Streaming follows the same rule: under WSGI Django reads an async generator to its end before
sending anything (server-sent events would all arrive at once), and under ASGI it pulls a plain
generator through a thread, chunk by chunk.

So each interface runs views written for it, from this one table:

- WSGI (`urls_wsgi`, Gunicorn): every view is a plain `def`; `/io` and `/stream` wait with
  `time.sleep` and `/poll` on a Redis subscription of its own, like Flask. A sync worker
  serves one request at a time.
- ASGI (`urls_asgi`, Uvicorn): every view is an `async def`; `/io` and `/stream` wait with
  `asyncio.sleep` and `/poll` as a member of the worker's chat bus, like FastAPI, so one
  worker holds many waiting requests. The views that
  never wait (`healthz`, `hello`, `cpu`, `echo`) run directly on the event loop
  (`on_event_loop`), without a thread; `/cpu` holds the loop while it computes, as FastAPI's
  does.

Errors the views raise (`ApiError`) are answered here in the contract's shape; a method a
route does not serve gets 405 with `Allow`. HEAD is served wherever GET is (the middleware
drops the body), like Flask.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, URLPattern, path, resolve

from django_app import context, views
from django_app.context import AppContext
from django_app.settings_env import WSGI
from gateway_common import metrics
from gateway_common.errors import ApiError, method_not_allowed_error

SyncView = Callable[[HttpRequest, AppContext], HttpResponseBase]
AsyncView = Callable[[HttpRequest, AppContext], Awaitable[HttpResponseBase]]
Endpoint = Callable[[HttpRequest], HttpResponseBase]
AsyncEndpoint = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def on_event_loop(view: SyncView) -> AsyncView:
    """`view` as an `async def` that calls it on the event loop: only for views that never wait."""

    async def run(request: HttpRequest, app: AppContext) -> HttpResponseBase:
        return view(request, app)

    run.__name__ = run.__qualname__ = view.__name__
    return run


@dataclass(frozen=True)
class Route:
    path: str  # the URL below the service's prefix, and the metrics' route label
    methods: tuple[str, ...]  # HEAD is added wherever GET is
    wsgi_view: SyncView
    asgi_view: AsyncView

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset(self.methods) | ({"HEAD"} if "GET" in self.methods else set())

    @property
    def allow_header(self) -> str:
        return ", ".join(sorted(self.allowed, key=("GET", "HEAD", "POST").index))


GET, POST = ("GET",), ("POST",)

ROUTES: tuple[Route, ...] = (
    Route("/healthz", GET, views.healthz, on_event_loop(views.healthz)),
    Route("/hello", GET, views.hello, on_event_loop(views.hello)),
    Route("/io", GET, views.io_blocking, views.io_async),
    Route("/cpu", GET, views.cpu, on_event_loop(views.cpu)),
    Route("/stream", GET, views.stream_blocking, views.stream_async),
    Route("/echo", POST, views.echo, on_event_loop(views.echo)),
    # Long polling: under WSGI each wait holds a sync worker; under ASGI it is a member of the
    # worker's chat bus, and the event loop serves on meanwhile.
    Route("/poll", GET + POST, views.poll_blocking, views.poll_async),
)
BY_PATH: dict[str, Route] = {route.path: route for route in ROUTES}


def _refusal(route: Route, request: HttpRequest) -> HttpResponseBase | None:
    """405 for a method the route does not serve, else None."""
    method = request.method or ""
    if method in route.allowed:
        return None
    error = method_not_allowed_error(method, request.path_info)
    return views.error_response(error, {"Allow": route.allow_header})


def wsgi_endpoint(route: Route) -> Endpoint:
    view = route.wsgi_view

    def endpoint(request: HttpRequest) -> HttpResponseBase:
        refused = _refusal(route, request)
        if refused is not None:
            return refused
        try:
            return view(request, context.of(request))
        except ApiError as error:
            return views.error_response(error)

    return endpoint


def asgi_endpoint(route: Route) -> AsyncEndpoint:
    view = route.asgi_view

    async def endpoint(request: HttpRequest) -> HttpResponseBase:
        refused = _refusal(route, request)
        if refused is not None:
            return refused
        try:
            return await view(request, context.of(request))
        except ApiError as error:
            return views.error_response(error)

    return endpoint


def urlpatterns(interface: str) -> list[URLPattern]:
    """The URL table of `interface`; each pattern is named by its route's path."""
    build = wsgi_endpoint if interface == WSGI else asgi_endpoint
    return [path(route.path.removeprefix("/"), build(route), name=route.path) for route in ROUTES]


def route_label(request: HttpRequest, urlconf: str) -> str:
    """The metrics' route label: the matched route's path, `<unmatched>` for 404s and 405s
    (as Flask and FastAPI label them). Resolved before the request runs, so the in-progress
    gauge has its final label; Django resolves again to dispatch (a handful of patterns: cheap)."""
    try:
        match = resolve(request.path_info, urlconf)
    except Resolver404:
        return metrics.UNMATCHED_ROUTE
    route = BY_PATH.get(match.url_name or "")
    if route is None or (request.method or "") not in route.allowed:
        return metrics.UNMATCHED_ROUTE
    return route.path
