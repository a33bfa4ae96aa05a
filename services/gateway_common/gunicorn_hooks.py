"""The Gunicorn server hooks every Gunicorn config of the stack shares (Flask's, FastAPI's).

The master serves the metrics of all its workers: it prepares the multiprocess directory and
sets the server gauges before any worker starts, serves the aggregate once its sockets are
bound, and drops a dead worker's live gauge samples. A config file binds them to its settings:

    _hooks = gunicorn_hooks.MetricsHooks(service, interface, workers, capacity, metrics_bind)
    on_starting, when_ready, child_exit = _hooks.on_starting, _hooks.when_ready, _hooks.child_exit

Importing this module imports `gateway_common.metrics`, which fails without
PROMETHEUS_MULTIPROC_DIR in the environment: the config file fails before any worker starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway_common import metrics
from gateway_common.settings import Bind


@dataclass(frozen=True)
class MetricsHooks:
    """Gunicorn's on_starting, when_ready and child_exit hooks for one service's metrics."""

    service: str
    interface: str
    workers: int
    capacity: int  # what server_worker_capacity reports (event loops for an unbounded server)
    metrics_bind: Bind

    def on_starting(self, server: Any) -> None:
        """Master, before any worker: fresh metrics directory, server gauges."""
        metrics.reset_for_server(self.service, self.interface, self.workers, self.capacity)

    def when_ready(self, server: Any) -> None:
        """Master, sockets bound: serve the aggregated metrics on their own port."""
        metrics.serve_metrics(self.metrics_bind)

    def child_exit(self, server: Any, worker: Any) -> None:
        """Master, a worker is gone (also when killed): drop its live gauge samples."""
        metrics.mark_dead(worker.pid)
