"""The Django project's two entry points: `create_wsgi_app()` (Gunicorn) and
`create_asgi_app()` (Uvicorn, `factory=True`).

Each builds Django's own handler (`WSGIHandler` / `ASGIHandler`), bound to the variant it
serves: its identity, its URL table (`django_app.routes` says why the tables differ) and its
chat broker (the ASGI side runs a `ChatBus` per worker, started by the lifespan).
"""

from __future__ import annotations

import os

import django
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponseBase

from django_app import context
from django_app.asgi_front import DjangoAsgiFront
from django_app.context import AppContext
from django_app.settings_env import ASGI, WSGI, DjangoEnvSettings, load_django_settings
from gateway_common import metrics
from gateway_common.chat_bus import ChatBus
from gateway_common.responses import ServiceIdentity
from gateway_common.settings import ConfigError

SETTINGS_MODULE_ENV = "DJANGO_SETTINGS_MODULE"
SETTINGS_MODULE = "django_app.django_settings"
URLCONF = {WSGI: "django_app.urls_wsgi", ASGI: "django_app.urls_asgi"}


def setup_django() -> None:
    """Point Django at this project's settings module and load it (once per process)."""
    chosen = os.environ.setdefault(SETTINGS_MODULE_ENV, SETTINGS_MODULE)
    if chosen != SETTINGS_MODULE:
        raise ConfigError(
            f"{SETTINGS_MODULE_ENV} must be unset or {SETTINGS_MODULE}, got {chosen!r}"
        )
    django.setup(set_prefix=False)  # the handlers set the script prefix per request


def _context(settings: DjangoEnvSettings, chat_bus: ChatBus | None = None) -> AppContext:
    identity = ServiceIdentity(
        service=settings.service,
        server=settings.server,
        interface=settings.interface,
        workers=settings.workers,
        worker_class=settings.worker_class,
        threads=settings.threads,
        framework="django",
    )
    return AppContext(
        identity=identity,
        urlconf=URLCONF[settings.interface],
        redis_url=settings.redis_url,
        chat_bus=chat_bus,
    )


class WsgiApp(WSGIHandler):
    """Django's WSGI handler, handing its context to each request."""

    def __init__(self, app_context: AppContext) -> None:
        self.app_context = app_context
        super().__init__()

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        context.bind(request, self.app_context)
        return super().get_response(request)


class AsgiHandler(ASGIHandler):
    """Django's ASGI handler, handing its context to each request."""

    def __init__(self, app_context: AppContext) -> None:
        self.app_context = app_context
        super().__init__()

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        context.bind(request, self.app_context)
        return await super().get_response_async(request)


def create_wsgi_app(settings: DjangoEnvSettings | None = None) -> WsgiApp:
    """The WSGI application; ``settings`` default to the environment's."""
    settings = settings or load_django_settings(WSGI)
    if settings.interface != WSGI:
        raise ConfigError(f"create_wsgi_app needs WSGI settings, got {settings.interface}")
    setup_django()
    return WsgiApp(_context(settings))


def create_asgi_app(settings: DjangoEnvSettings | None = None) -> DjangoAsgiFront:
    """The ASGI application; ``settings`` default to the environment's."""
    settings = settings or load_django_settings(ASGI)
    if settings.interface != ASGI:
        raise ConfigError(f"create_asgi_app needs ASGI settings, got {settings.interface}")
    setup_django()
    service, interface = settings.service, settings.interface
    bus = ChatBus(
        settings.redis_url,
        on_state_change=lambda up: metrics.set_chat_broker_up(service, interface, up),
    )
    app_context = _context(settings, bus)
    return DjangoAsgiFront(AsgiHandler(app_context), app_context.identity, bus)
