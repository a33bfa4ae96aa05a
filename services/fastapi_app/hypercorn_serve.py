"""Launcher of the FastAPI service on Hypercorn: `python -m fastapi_app.hypercorn_serve`.

This process is Hypercorn's supervisor: it serves the aggregated metrics (gateway_common.launch),
binds the socket and spawns the workers, which import the app afresh. Every Hypercorn setting
is here, in `hypercorn_config`.

Shutdown: on SIGTERM or SIGINT the supervisor sets Hypercorn's shutdown event; each worker then
stops accepting, lets its connections finish for up to GRACEFUL_SHUTDOWN_S and runs the lifespan
shutdown. The workers ignore SIGTERM (as Hypercorn makes them ignore SIGINT) so that a signal
sent to the whole process group does not kill them with requests in flight.

Hypercorn's supervisor replaces a worker that exits cleanly, but a worker that dies (a crash, a
SIGKILL) stops the whole server: Hypercorn does not respawn it.
"""

from __future__ import annotations

import logging
import signal
import sys

from hypercorn.config import Config
from hypercorn.run import run
from starlette.types import ASGIApp

from fastapi_app import proxied
from fastapi_app.settings import INTERFACE, AsgiSettings, load_asgi_settings
from gateway_common import launch
from gateway_common.limits import (
    GRACEFUL_SHUTDOWN_S,
    LISTEN_BACKLOG,
    WS_MAX_MESSAGE_BYTES,
    WS_PING_INTERVAL_S,
)

LAUNCHER = "fastapi_app.hypercorn_serve"
# Evaluated by Hypercorn in each worker: the call below builds that worker's app.
WORKER_APP = f"{LAUNCHER}:create_worker_app()"


def create_worker_app() -> ASGIApp:
    """One worker's app (called in the worker); the supervisor relays SIGTERM (module doc)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return proxied.create_app()


def hypercorn_config(started: launch.Launch[AsgiSettings]) -> Config:
    """Hypercorn's settings: Uvicorn's equivalents (fastapi_app.serve) where Hypercorn has one."""
    settings = started.settings
    config = Config()
    config.application_path = WORKER_APP
    config.bind = [str(settings.bind)]
    config.workers = settings.workers
    config.worker_class = settings.worker_class  # the registry's: "asyncio"
    config.backlog = LISTEN_BACKLOG
    config.keep_alive_timeout = settings.keepalive_s
    config.graceful_timeout = GRACEFUL_SHUTDOWN_S
    config.websocket_max_message_size = WS_MAX_MESSAGE_BYTES
    # Hypercorn pings but has no pong deadline: a dead peer is found by the TCP stack instead.
    config.websocket_ping_interval = WS_PING_INTERVAL_S
    config.root_path = settings.root_path
    config.accesslog = None  # the app logs every request as JSON, with its request id
    # A Logger, not "-": Hypercorn would give "-" a plain-text handler of its own.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.loglevel = settings.log_level.upper()
    config.logconfig_dict = started.log_config  # applied in each worker
    return config


def main() -> int:
    started = launch.prepare(LAUNCHER, load_asgi_settings, INTERFACE)
    return run(hypercorn_config(started))


if __name__ == "__main__":
    sys.exit(main())
