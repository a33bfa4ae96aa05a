"""Gunicorn/Flask settings from the environment (docs/architecture.md), checked once."""

from __future__ import annotations

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
WORKER_CLASSES = ("sync", "gthread", "gevent")


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
    workers = env_int("WSGI_WORKERS", 2, 1, 64, environ=environ)
    threads = env_int("WSGI_THREADS", 1, 1, 256, environ=environ)
    worker_class = env_choice("WSGI_WORKER_CLASS", "sync", WORKER_CLASSES, environ=environ)
    if worker_class == "sync" and threads > 1:
        worker_class = "gthread"  # what gunicorn does too; said explicitly here
    bind = env_bind("WSGI_BIND", "127.0.0.1:8001", environ=environ)
    metrics_bind = env_bind("WSGI_METRICS_BIND", "127.0.0.1:9101", environ=environ)
    if bind == metrics_bind:
        raise ConfigError(f"WSGI_METRICS_BIND must differ from WSGI_BIND, both are {bind}")
    variant = variants.current(SERVICE, environ)
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
