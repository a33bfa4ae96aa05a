"""The end of an HTTP request, alike in every service: its samples, then its request line."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway_common.logging import log_request, request_log_enabled
from gateway_common.metrics import RequestSeries


def finish_request(
    series: RequestSeries,
    status: int,
    started: float,
    service: str,
    request_id: str,
    method: str,
    path: Callable[[], str],
    threaded: bool = True,
) -> None:
    """Count the request and time it from `started` (a `time.perf_counter()` reading), then
    log its line when one is wanted (`gateway_common.logging`); `path` is called only then.

    `threaded`: whether other threads of the process may finish requests at the same time
    (`RequestSeries.finished`).
    """
    duration_s = time.perf_counter() - started
    series.finished(status, duration_s, threaded=threaded)
    if request_log_enabled(status, duration_s):
        log_request(
            service=service,
            request_id=request_id,
            method=method,
            path=path(),
            route=series.route,
            status=status,
            duration_s=duration_s,
        )
