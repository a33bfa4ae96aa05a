"""Tornado service settings from the environment (docs/architecture.md), checked once.

Forwarded headers (`X-Forwarded-*`) are not read: no answer of this service depends on the
client's address or scheme, and the request log carries nginx's request id instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_common import variants
from gateway_common.settings import (
    Bind,
    ConfigError,
    Environ,
    env_bind,
    env_int,
    env_log_level,
    env_redis_url,
    env_root_path,
)

# The framework's default variant (GATEWAY_VARIANT names another: gateway_common.variants).
SERVICE = "tornado"
INTERFACE = "tornado"
FRAMEWORK = "tornado"


@dataclass(frozen=True)
class TornadoSettings:
    service: str  # the variant's name: the `service` label of metrics and logs, /healthz
    server: str  # the server the variant runs on (Tornado's own HTTPServer)
    worker_class: str
    bind: Bind
    workers: int
    metrics_bind: Bind
    # The public prefix nginx cuts off (`/tornado`); a request that still carries it is
    # routed as if it did not, as Uvicorn's root_path does for the FastAPI service.
    root_path: str
    keepalive_s: int
    log_level: str
    redis_url: str  # the chat broker; no default here: each run mode passes its own

    @property
    def capacity(self) -> int:
        return self.workers  # one event loop per worker; in-flight per loop is unbounded


def load_tornado_settings(environ: Environ | None = None) -> TornadoSettings:
    """Settings from ``environ`` (the process environment when None)."""
    variant = variants.current(SERVICE, environ)
    app_port = variants.APP_PORT_BASE + variant.slot
    metrics_port = variants.METRICS_PORT_BASE + variant.slot
    bind = env_bind("TORNADO_BIND", f"127.0.0.1:{app_port}", environ=environ)
    metrics_bind = env_bind("TORNADO_METRICS_BIND", f"127.0.0.1:{metrics_port}", environ=environ)
    if bind == metrics_bind:
        raise ConfigError(f"TORNADO_METRICS_BIND must differ from TORNADO_BIND, both are {bind}")
    return TornadoSettings(
        service=variant.name,
        server=variant.server,
        worker_class=variant.worker_class,
        bind=bind,
        workers=env_int("TORNADO_WORKERS", variant.workers, 1, 64, environ=environ),
        metrics_bind=metrics_bind,
        root_path=env_root_path("TORNADO_ROOT_PATH", variant.prefix, environ=environ),
        keepalive_s=env_int("BACKEND_KEEPALIVE_S", 75, 1, 3600, environ=environ),
        log_level=env_log_level(environ=environ),
        redis_url=env_redis_url(environ=environ),
    )
