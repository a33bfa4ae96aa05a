"""Launcher of the FastAPI service on Granian (ASGI mode): `python -m fastapi_app.granian_serve`.

This process is Granian's main process: it serves the aggregated metrics (gateway_common.launch),
binds the socket and starts the workers, each a Rust HTTP runtime driving an asyncio loop with
the app (the ASGI lifespan included). Every Granian setting is here, in `granian_server`.

Workers are spawned, not forked, as Uvicorn's and Hypercorn's are: a fresh interpreter that
imports the app, with nothing of this process (its metrics thread and socket) inherited. A worker
that dies is replaced. On SIGTERM or SIGINT Granian stops accepting, lets the requests in flight
finish and stops its workers, killing those still running after GRACEFUL_SHUTDOWN_S.
"""

from __future__ import annotations

import multiprocessing
import sys

from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server

from fastapi_app.settings import INTERFACE, AsgiSettings, load_asgi_settings
from gateway_common import launch
from gateway_common.limits import GRACEFUL_SHUTDOWN_S, LISTEN_BACKLOG, connection_limit

LAUNCHER = "fastapi_app.granian_serve"
# Called by Granian in each worker (factory=True).
APP_FACTORY = "fastapi_app.proxied:create_app"


def granian_server(started: launch.Launch[AsgiSettings]) -> Server:
    """Granian's settings: Uvicorn's equivalents (fastapi_app.serve) where Granian has one.

    Granian has no setting for a WebSocket's largest message (the app closes a bigger one with
    1009), for WebSocket pings, or for the idle keep-alive timeout of HTTP/1 connections.
    """
    settings = started.settings
    return Server(
        APP_FACTORY,
        factory=True,
        address=settings.bind.host,
        port=settings.bind.port,
        interface=Interfaces.ASGI,  # with the lifespan protocol (ASGINL: without)
        workers=settings.workers,
        loop=Loops(settings.worker_class),  # the registry's: "asyncio"
        websockets=True,
        backlog=LISTEN_BACKLOG,
        # Requests one worker runs at once; Uvicorn's limit_concurrency, from the same budget.
        backpressure=connection_limit(),
        http1_settings=HTTP1Settings(keep_alive=True),
        url_path_prefix=settings.root_path or None,
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SHUTDOWN_S,
        log_level=LogLevels(settings.log_level),
        log_dictconfig=started.log_config,
        log_access=False,  # the app logs every request as JSON, with its request id
    )


def main() -> int:
    started = launch.prepare(LAUNCHER, load_asgi_settings, INTERFACE)
    multiprocessing.set_start_method("spawn")
    granian_server(started).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
