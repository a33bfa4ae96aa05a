"""Launcher of the FastAPI service: `python -m fastapi_app.serve`.

Checks the environment, prepares the metrics directory, serves the
aggregated metrics from this (supervisor) process (fastapi_app.launch), then hands over to
uvicorn, which spawns the workers. Uvicorn's workers are *spawned*, not forked: they import the app
fresh, so nothing here leaks into them except the environment.
"""

from __future__ import annotations

import sys

import uvicorn

from fastapi_app import launch
from gateway_common.limits import (
    GRACEFUL_SHUTDOWN_S,
    LISTEN_BACKLOG,
    WS_MAX_MESSAGE_BYTES,
    WS_PING_INTERVAL_S,
    WS_PING_TIMEOUT_S,
    connection_limit,
)

LAUNCHER = "fastapi_app.serve"
APP_FACTORY = "fastapi_app.app:create_app"


def main(app_factory: str = APP_FACTORY) -> int:
    """Serve `app_factory` (another app only for the overhead bench's bare app)."""
    started = launch.prepare(LAUNCHER)
    settings = started.settings
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.bind.host,
        port=settings.bind.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        ws_max_size=WS_MAX_MESSAGE_BYTES,
        ws_ping_interval=WS_PING_INTERVAL_S,
        ws_ping_timeout=WS_PING_TIMEOUT_S,
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
