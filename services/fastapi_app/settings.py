"""Uvicorn/FastAPI settings from the environment (docs/architecture.md), checked once."""

from __future__ import annotations

from dataclasses import dataclass

from gateway_common import variants
from gateway_common.settings import (
    Bind,
    ConfigError,
    Environ,
    env_allowed_ips,
    env_bind,
    env_int,
    env_log_level,
    env_redis_url,
    env_root_path,
)

# The framework's default variant (GATEWAY_VARIANT names another: gateway_common.variants).
SERVICE = "fastapi"
INTERFACE = "asgi"


@dataclass(frozen=True)
class AsgiSettings:
    service: str  # the variant's name: the `service` label of metrics and logs, /healthz
    server: str  # the server the variant runs on
    worker_class: str
    bind: Bind
    workers: int
    metrics_bind: Bind
    root_path: str
    forwarded_allow_ips: str
    keepalive_s: int
    log_level: str
    redis_url: str  # the chat broker; no default here: each run mode passes its own

    @property
    def capacity(self) -> int:
        return self.workers  # one event loop per worker; in-flight per loop is unbounded


def load_asgi_settings(environ: Environ | None = None) -> AsgiSettings:
    """Settings from ``environ`` (the process environment when None)."""
    bind = env_bind("ASGI_BIND", "127.0.0.1:8002", environ=environ)
    metrics_bind = env_bind("ASGI_METRICS_BIND", "127.0.0.1:9102", environ=environ)
    if bind == metrics_bind:
        raise ConfigError(f"ASGI_METRICS_BIND must differ from ASGI_BIND, both are {bind}")
    variant = variants.current(SERVICE, environ)
    return AsgiSettings(
        service=variant.name,
        server=variant.server,
        worker_class=variant.worker_class,
        bind=bind,
        workers=env_int("ASGI_WORKERS", 2, 1, 64, environ=environ),
        metrics_bind=metrics_bind,
        root_path=env_root_path("ASGI_ROOT_PATH", "/asgi", environ=environ),
        forwarded_allow_ips=env_allowed_ips("FORWARDED_ALLOW_IPS", "127.0.0.1", environ=environ),
        keepalive_s=env_int("BACKEND_KEEPALIVE_S", 75, 1, 3600, environ=environ),
        log_level=env_log_level(environ=environ),
        redis_url=env_redis_url(environ=environ),
    )
