"""Flask service settings from the environment (docs/architecture.md), checked once.

One reader for every server the Flask app runs on (Gunicorn, uWSGI, Granian): the variant
(GATEWAY_VARIANT) names the server, and the server decides which worker classes are valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from gateway_common import variants
from gateway_common.settings import (
    Bind,
    ConfigError,
    Environ,
    env_bind,
    env_choice,
    env_int,
    env_log_level,
    env_redis_url,
)

# The framework's default variant (GATEWAY_VARIANT names another: gateway_common.variants).
SERVICE = "flask"
INTERFACE = "wsgi"
# A worker busy with one request for longer than this is killed (Gunicorn's `timeout`, uWSGI's
# harakiri). The longest request the contract allows is a 60 s stream (events x interval_ms
# <= 60000), so 30 s would kill valid streams: the timeout covers that plus a margin.
REQUEST_TIMEOUT_S = 90


def worker_classes(server: str) -> tuple[str, ...]:
    """The worker classes the registry runs the Flask app with on `server`, in its order.

    Gunicorn: sync, gthread, gevent (one variant each); uWSGI and Granian: their one model.
    """
    on_server = (v for v in variants.VARIANTS if v.framework == "flask" and v.server == server)
    return tuple(dict.fromkeys(v.worker_class for v in on_server))


@dataclass(frozen=True)
class WsgiSettings:
    service: str  # the variant's name: the `service` label of metrics and logs, /healthz
    server: str  # the server the variant runs on (the registry's word for it)
    bind: Bind
    workers: int
    threads: int
    worker_class: str  # effective class: "sync" with threads > 1 runs as "gthread"
    metrics_bind: Bind
    proxy_count: int
    keepalive_s: int
    log_level: str
    redis_url: str  # the chat broker, for /poll; no default here: each run mode passes its own

    @property
    def capacity(self) -> int:
        if self.worker_class == "gevent":
            return self.workers * variants.GEVENT_WORKER_CONNECTIONS
        return self.workers * self.threads


def load_wsgi_settings(environ: Environ | None = None) -> WsgiSettings:
    """Settings from ``environ`` (the process environment when None)."""
    variant = variants.current(SERVICE, environ)
    if variant.framework != SERVICE:
        raise ConfigError(
            f"{variants.VARIANT_ENV} names {variant.name!r}, a {variant.framework} variant; "
            "the Flask app serves the flask ones"
        )
    workers = env_int("WSGI_WORKERS", 2, 1, 64, environ=environ)
    threads = env_int("WSGI_THREADS", 1, 1, 256, environ=environ)
    worker_class = env_choice(
        "WSGI_WORKER_CLASS",
        variant.worker_class,
        worker_classes(variant.server),
        environ=environ,
    )
    if worker_class == "sync" and threads > 1:
        worker_class = "gthread"  # what gunicorn does too; said explicitly here
    bind = env_bind("WSGI_BIND", "127.0.0.1:8001", environ=environ)
    metrics_bind = env_bind("WSGI_METRICS_BIND", "127.0.0.1:9101", environ=environ)
    if bind == metrics_bind:
        raise ConfigError(f"WSGI_METRICS_BIND must differ from WSGI_BIND, both are {bind}")
    return WsgiSettings(
        service=variant.name,
        server=variant.server,
        bind=bind,
        workers=workers,
        threads=threads,
        worker_class=worker_class,
        metrics_bind=metrics_bind,
        proxy_count=env_int("WSGI_PROXY_COUNT", 1, 0, 10, environ=environ),
        keepalive_s=env_int("BACKEND_KEEPALIVE_S", 75, 1, 3600, environ=environ),
        log_level=env_log_level(environ=environ),
        redis_url=env_redis_url(environ=environ),
    )


def load_server_settings(server: str, environ: Environ | None = None) -> WsgiSettings:
    """Settings of a launcher that runs the app on `server` (flask_app.uwsgi_serve, ...).

    GATEWAY_VARIANT defaults to the registry's first Flask variant on that server, and must
    name one: a launcher never reports another server in /healthz or in its metrics.
    """
    source = os.environ if environ is None else environ
    on_server = [v.name for v in variants.VARIANTS if v.framework == SERVICE and v.server == server]
    if not on_server:
        raise ConfigError(f"no Flask variant runs on {server!r}")
    chosen = source.get(variants.VARIANT_ENV) or on_server[0]
    settings = load_wsgi_settings({**source, variants.VARIANT_ENV: chosen})
    if settings.server != server:
        raise ConfigError(
            f"{variants.VARIANT_ENV} names {settings.service!r}, which runs on "
            f"{settings.server}; this launcher runs {server}: {', '.join(on_server)}"
        )
    return settings
