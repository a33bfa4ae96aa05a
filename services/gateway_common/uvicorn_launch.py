"""Uvicorn as every Uvicorn-served variant runs it (FastAPI's, and Django's over ASGI).

Uvicorn's workers are *spawned*, not forked: each imports the app fresh, so nothing of the
launcher leaks into them except the environment.
"""

from __future__ import annotations

from typing import Protocol

import uvicorn

from gateway_common.launch import Launch, ServerSettings
from gateway_common.limits import (
    GRACEFUL_SHUTDOWN_S,
    LISTEN_BACKLOG,
    WS_MAX_MESSAGE_BYTES,
    WS_PING_INTERVAL_S,
    WS_PING_TIMEOUT_S,
    connection_limit,
)


class UvicornSettings(ServerSettings, Protocol):
    @property
    def keepalive_s(self) -> int: ...
    @property
    def forwarded_allow_ips(self) -> str: ...
    @property
    def root_path(self) -> str: ...


def run_uvicorn(app_factory: str, started: Launch[UvicornSettings]) -> None:
    """Serve the app `app_factory` ("module:function") makes, until Uvicorn is stopped."""
    settings = started.settings
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.bind.host,
        port=settings.bind.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        # An app without WebSockets refuses the handshake itself, with the contract's JSON 404.
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=WS_PING_INTERVAL_S,
        ws_ping_timeout=WS_PING_TIMEOUT_S,
        lifespan="on",
        timeout_keep_alive=settings.keepalive_s,
        # Past its open-file limit a worker answers HTTP with 503 instead of failing accept();
        # WebSocket upgrades bypass this check (the edge caps them: stackctl.capacity).
        limit_concurrency=connection_limit(),
        backlog=LISTEN_BACKLOG,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        root_path=settings.root_path,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        access_log=False,  # the app logs every request as JSON, with its request id
        log_config=started.log_config,
        log_level=settings.log_level,
    )
