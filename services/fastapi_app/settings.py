"""Uvicorn/FastAPI settings from the environment (docs/architecture.md), checked once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gateway_common.settings import (
    Bind,
    ConfigError,
    env_allowed_ips,
    env_bind,
    env_int,
    env_log_level,
    env_root_path,
)

CHAT_BUS_DIR_ENV = "CHAT_BUS_DIR"


@dataclass(frozen=True)
class AsgiSettings:
    bind: Bind
    workers: int
    metrics_bind: Bind
    root_path: str
    forwarded_allow_ips: str
    keepalive_s: int
    log_level: str
    chat_bus_dir: Path | None  # None: in-process chat only (unit tests)

    @property
    def capacity(self) -> int:
        return self.workers  # one event loop per worker; in-flight per loop is unbounded


def chat_bus_dir_from_env() -> Path | None:
    raw = os.environ.get(CHAT_BUS_DIR_ENV)
    return Path(raw) if raw else None


def load_asgi_settings(require_chat_bus_dir: bool = False) -> AsgiSettings:
    bind = env_bind("ASGI_BIND", "127.0.0.1:8002")
    metrics_bind = env_bind("ASGI_METRICS_BIND", "127.0.0.1:9102")
    if bind == metrics_bind:
        raise ConfigError(f"ASGI_METRICS_BIND must differ from ASGI_BIND, both are {bind}")
    chat_bus_dir = chat_bus_dir_from_env()
    if require_chat_bus_dir and chat_bus_dir is None:
        raise ConfigError(
            f"{CHAT_BUS_DIR_ENV} is required: a writable directory for the per-worker chat "
            "sockets (cross-worker broadcast)"
        )
    return AsgiSettings(
        bind=bind,
        workers=env_int("ASGI_WORKERS", 2, 1, 64),
        metrics_bind=metrics_bind,
        root_path=env_root_path("ASGI_ROOT_PATH", "/asgi"),
        forwarded_allow_ips=env_allowed_ips("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        keepalive_s=env_int("BACKEND_KEEPALIVE_S", 75, 1, 3600),
        log_level=env_log_level(),
        chat_bus_dir=chat_bus_dir,
    )
