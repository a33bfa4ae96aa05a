"""Launcher of the Tornado service: `python -m tornado_app.serve`.

Checks the environment, binds the listening sockets, prepares the metrics directory and
serves the aggregated metrics from this process, then starts the workers (`tornado_app.worker`)
and supervises them (`tornado_app.supervisor`): restarts a worker that dies, and on SIGTERM
lets every worker drain (requests in flight finish, WebSockets close with 1012) within
GRACEFUL_SHUTDOWN_S.
"""

from __future__ import annotations

import logging
import logging.config
import sys

from tornado.netutil import bind_sockets

from gateway_common.limits import LISTEN_BACKLOG
from gateway_common.logging import log_config_dict
from gateway_common.settings import ConfigError
from tornado_app.lifecycle import GRACEFUL_SHUTDOWN_S
from tornado_app.settings import INTERFACE, load_tornado_settings
from tornado_app.supervisor import Supervisor

WORKER_COMMAND = [sys.executable, "-m", "tornado_app.worker"]

logger = logging.getLogger("tornado_app.serve")


def main() -> int:
    try:
        settings = load_tornado_settings()
        # Imported here so a missing PROMETHEUS_MULTIPROC_DIR is reported like the others.
        from gateway_common import metrics
    except ConfigError as exc:
        print(f"tornado_app.serve: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(log_config_dict(settings.service, settings.log_level))
    try:
        sockets = bind_sockets(settings.bind.port, settings.bind.host, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        print(f"tornado_app.serve: cannot listen on {settings.bind}: {exc}", file=sys.stderr)
        return 1
    metrics.prepare_multiproc_dir()
    metrics.set_server_gauges(settings.service, INTERFACE, settings.workers, settings.capacity)
    metrics.serve_metrics(settings.metrics_bind)
    logger.info(
        "starting tornado",
        extra={
            "fields": {
                "bind": str(settings.bind),
                "workers": settings.workers,
                "root_path": settings.root_path,
            }
        },
    )
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
