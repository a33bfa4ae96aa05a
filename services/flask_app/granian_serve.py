"""Granian settings and launcher of the flask-granian variant: `python -m flask_app.granian_serve`.

Granian has no config file: every setting lives here (like gunicorn.conf.py), values from the
checked WsgiSettings. Granian's main process is this Python process: it prepares the metrics
directory, sets the server gauges and serves the aggregated metrics from a daemon thread, then
Granian binds the socket and forks the workers (multiprocessing's `fork` on Linux), which import
the app themselves (`create_app`, a factory) and write their own per-pid metrics files.

How Granian's WSGI mode behaves, and what the settings below make of it:

- **Threads.** Each worker runs Rust's HTTP server on its own (runtime) thread and calls the app
  on a pool of `blocking_threads` Python threads: workers x blocking_threads requests run at once.
- **Backpressure** is per worker and counts *connections*, not requests: past it the worker stops
  accepting (they wait in the listen backlog), and an idle keep-alive connection holds its slot.
  nginx keeps up to 16 idle connections per nginx worker, so a bound near the thread count would
  starve it; it is the worker's descriptor budget instead (as Uvicorn's limit), and requests over
  the threads wait inside the worker for a free one.
- **Proxy headers.** Granian passes `X-Forwarded-*` through as `HTTP_*` and sets REMOTE_ADDR to
  the peer (nginx); Flask's ProxyFix reads them, as on every Flask variant. Granian also copies
  its own process environment into every request's WSGI environ: nothing secret belongs there.
- **Streaming.** A response iterator is drained on a blocking thread, each chunk sent as it is
  yielded: SSE events arrive one by one.
- **Listeners.** On Linux each worker opens a listening socket of its own (SO_REUSEPORT) once it
  has imported the app; the main process only reserves the port. Unlike Gunicorn's or uWSGI's
  one shared socket, connections queued on a worker that dies are reset (unless the host sets
  net.ipv4.tcp_migrate_req=1), and while no worker listens yet they are refused; nginx then
  tries the next upstream entry or answers 502.
- **Stop.** SIGTERM/SIGINT to the main process: workers are told to stop, finish their requests
  (each connection is shut down gracefully) and exit; one still running after
  GRACEFUL_SHUTDOWN_S is killed. SIGHUP respawns the workers one at a time. A worker still
  importing the app stops once it has it (flask_app.worker_signals).
- **Crashes.** A worker that dies is respawned (Granian's default is to shut everything down).
"""

from __future__ import annotations

import signal
import sys
from functools import partial

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels

from flask_app.settings import INTERFACE, WsgiSettings, load_server_settings
from flask_app.worker_signals import keep_stops_in_children
from gateway_common import launch
from gateway_common.limits import GRACEFUL_SHUTDOWN_S, LISTEN_BACKLOG, connection_limit
from gateway_common.logging import log_config_dict

LAUNCHER = "flask_app.granian_serve"
SERVER = "granian"
APP_FACTORY = "flask_app.granian_app:create_app"


def load_granian_settings() -> WsgiSettings:
    return load_server_settings(SERVER)


def granian_server(settings: WsgiSettings) -> Granian:
    """Granian with every setting of the variant (nothing is left to Granian's defaults)."""
    return Granian(
        APP_FACTORY,
        factory=True,
        interface=Interfaces.WSGI,
        address=settings.bind.host,
        port=settings.bind.port,
        workers=settings.workers,
        blocking_threads=settings.threads,
        # One Rust I/O thread per worker: Python code runs on the blocking threads only.
        runtime_threads=1,
        # nginx speaks HTTP/1.1 to the services; no WebSockets on WSGI.
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(
            # Also ends an idle keep-alive connection (the timer runs while a connection waits
            # for its next request): it must outlast nginx's upstream keepalive_timeout (60 s).
            header_read_timeout=settings.keepalive_s * 1000,
            keep_alive=True,
        ),
        backlog=LISTEN_BACKLOG,
        backpressure=connection_limit(),
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SHUTDOWN_S,
        log_enabled=True,
        log_level=LogLevels(settings.log_level),
        log_dictconfig=log_config_dict(settings.service, settings.log_level),
        log_access=False,  # the app logs every request as JSON, with its request id
    )


def main() -> int:
    settings = launch.load_settings(LAUNCHER, load_granian_settings)
    server = granian_server(settings)  # configures logging (JSON) in this process too
    launch.start_metrics(settings, INTERFACE)
    launch.log_start(settings, blocking_threads=settings.threads)
    # Runs after Granian set the main process's handlers, before it forks the workers.
    server.on_startup(partial(keep_stops_in_children, signal.SIGINT, signal.SIGTERM))
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
