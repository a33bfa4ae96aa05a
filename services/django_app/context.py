"""What one entry point (WSGI or ASGI) hands to its requests: who answers, which URL table,
which chat broker.

Django's settings are global to the process, but an entry point's identity is its own (the
unit tests run both entry points in one process). The entry point's handler binds its context
to each request before the middleware runs; the middleware and the views read it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest

from gateway_common.chat_bus import ChatBus
from gateway_common.responses import ServiceIdentity

_ATTRIBUTE = "gateway_context"


@dataclass(frozen=True)
class AppContext:
    identity: ServiceIdentity
    urlconf: str  # module of the entry point's URL table (django_app.urls_wsgi / urls_asgi)
    redis_url: str  # the chat broker: WSGI's /poll waits subscribe to it themselves
    chat_bus: ChatBus | None  # ASGI: the worker's one subscription, which /poll waits join


def bind(request: HttpRequest, context: AppContext) -> None:
    setattr(request, _ATTRIBUTE, context)
    # Django's per-request URL table: resolving, 404s and error handlers all use it.
    request.urlconf = context.urlconf  # type: ignore[attr-defined]


def of(request: HttpRequest) -> AppContext:
    context: AppContext = getattr(request, _ATTRIBUTE)
    return context
