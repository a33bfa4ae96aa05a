"""Launcher of the Tornado service: `python -m tornado_app.serve`.

Checks the environment, binds the listening sockets, prepares the metrics directory and
serves the aggregated metrics from this process, then starts the workers (`tornado_app.worker`)
and supervises them (`tornado_app.supervisor`): restarts a worker that dies, and on SIGTERM
lets every worker drain (requests in flight finish, WebSockets close with 1012) within
GRACEFUL_SHUTDOWN_S.
"""

from __future__ import annotations

import sys

from tornado.netutil import bind_sockets

from gateway_common import launch
from gateway_common.limits import LISTEN_BACKLOG
from tornado_app.lifecycle import GRACEFUL_SHUTDOWN_S
from tornado_app.settings import INTERFACE, load_tornado_settings
from tornado_app.supervisor import Supervisor

LAUNCHER = "tornado_app.serve"
WORKER_COMMAND = [sys.executable, "-m", "tornado_app.worker"]


def main() -> int:
    settings = launch.load_settings(LAUNCHER, load_tornado_settings)
    from gateway_common import metrics  # importable now: load_settings checked for it

    launch.configure_logging(settings)
    try:
        sockets = bind_sockets(settings.bind.port, settings.bind.host, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        print(f"{LAUNCHER}: cannot listen on {settings.bind}: {exc}", file=sys.stderr)
        return 1
    # After the sockets: a second launcher that cannot listen leaves the running one's
    # metrics directory alone.
    launch.start_metrics(settings, INTERFACE)
    launch.log_start(settings)
    supervisor = Supervisor(
        WORKER_COMMAND,
        sockets,
        settings.workers,
        grace_s=GRACEFUL_SHUTDOWN_S,
        on_exit=metrics.mark_dead,
    )
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
