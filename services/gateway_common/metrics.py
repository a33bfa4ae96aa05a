"""Prometheus metrics of both services, correct with several worker processes.

Multiprocess mode: every process writes its samples to files in
`PROMETHEUS_MULTIPROC_DIR`; the server's master process serves the aggregate on its own
port (never on an app route). prometheus_client picks the mode when it is first
imported, so the variable must be in the environment before Python starts: importing
this module without it, or after prometheus_client was imported without it, fails.

Dead workers: their live gauge files (`http_requests_in_progress`, `websocket_connections`,
`chat_broker_up`)
must be dropped or the gauges keep their last values forever. Gunicorn calls
`mark_process_dead` from its `child_exit` hook; Uvicorn has no such hook, so the
collector sweeps the directory before every scrape and marks pids that no longer exist.
Counters and histograms of dead workers stay (their counts happened).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from gateway_common.settings import Bind, ConfigError

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

if not os.environ.get(MULTIPROC_DIR_ENV):
    raise ConfigError(
        f"{MULTIPROC_DIR_ENV} is not set: set it to a per-service writable directory in the "
        "environment before the server starts (prometheus_client reads it at import time)"
    )

from prometheus_client import (  # noqa: E402  (the check above must run first)
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
    values,
)
from prometheus_client.multiprocess import (  # noqa: E402
    MultiProcessCollector,
    mark_process_dead,
)

if values.ValueClass is values.MutexValue:
    raise ConfigError(
        "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set, so it runs "
        "in single-process mode: set the variable in the environment before Python starts"
    )

logger = logging.getLogger(__name__)

UNMATCHED_ROUTE = "<unmatched>"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SERVICE_LABELS = ("service", "interface")
# Histogram buckets span a cache hit to the longest bounded request (a 60 s stream).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

http_requests_total = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template and status.",
    [*_SERVICE_LABELS, "method", "route", "status"],
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "Time from request start to the end of the response body.",
    [*_SERVICE_LABELS, "method", "route"],
    buckets=_DURATION_BUCKETS,
)
http_requests_in_progress = Gauge(
    "http_requests_in_progress",
    "HTTP requests being served now.",
    [*_SERVICE_LABELS, "method", "route"],
    multiprocess_mode="livesum",
)
server_workers = Gauge(
    "server_workers",
    "Worker processes the server was started with.",
    list(_SERVICE_LABELS),
    multiprocess_mode="max",
)
server_worker_capacity = Gauge(
    "server_worker_capacity",
    "Requests the server can run at once (WSGI workers x threads, ASGI event loops).",
    list(_SERVICE_LABELS),
    multiprocess_mode="max",
)
websocket_connections = Gauge(
    "websocket_connections",
    "Open WebSocket connections.",
    [*_SERVICE_LABELS, "route"],
    multiprocess_mode="livesum",
)
websocket_messages_total = Counter(
    "websocket_messages_total",
    "WebSocket messages, in (from clients) and out (to clients).",
    [*_SERVICE_LABELS, "route", "direction"],
)
chat_broker_up = Gauge(
    "chat_broker_up",
    "1 while every live worker is subscribed to the chat broker (Redis), else 0.",
    list(_SERVICE_LABELS),
    # The lowest value over live workers: one disconnected worker makes the service's value 0.
    multiprocess_mode="livemin",
)


def method_label(method: str) -> str:
    """Bound the label's values: unknown methods are one series, not one each."""
    upper = method.upper()
    return upper if upper in _KNOWN_METHODS else "OTHER"


# Serialises the read-modify-write of request samples between a worker's threads (gthread).
_write_lock = threading.Lock()
# This process's multiprocess files, each mapping seen as an array of doubles: in the
# library's format a sample is its value and a timestamp, two native doubles at an 8-byte
# aligned offset that the file's index gives per key. One view per mapping: when the library
# grows a file it maps it anew, and the old mapping (kept by its view) still maps the file.
_views: dict[int, memoryview] = {}


@dataclass(frozen=True, slots=True)
class _Slot:
    """Where one sample's value lives in this process's files, written in place.

    prometheus_client's value class takes a lock, checks the pid, goes through four calls and
    packs 16 bytes per write, and a request writes five samples. Here a write is one double
    stored at the sample's offset in the same file, so MultiProcessCollector reads it
    unchanged; the file is mapped shared, so a killed worker's counts stay. The value is read
    from the file, so the request samples are written only through here (the library's value
    objects of these samples are not kept current).
    """

    view: memoryview
    index: int

    @classmethod
    def of(cls, value: Any) -> _Slot:
        """The slot of a library value object (a child's `_value`, a histogram's `_sum`)."""
        value.get()  # the library's pid check: after a fork, this opens the process's own file
        mapping = value._file._m
        view = _views.get(id(mapping))
        if view is None:
            view = _views[id(mapping)] = memoryview(mapping).cast("d")
        return cls(view, value._file._positions[value._key] // 8)


@dataclass(slots=True)
class _BoundSeries:
    """A request series' samples in this process's files."""

    in_progress: _Slot
    duration_sum: _Slot
    duration_buckets: tuple[_Slot, ...]  # non-cumulative, as the library stores them
    by_status: dict[int, _Slot]


class RequestSeries:
    """The request metrics for one (service, interface, method, route), bound once per process.

    `labels()` validates and looks up its label values under a lock on every call; the hot path
    instead holds the bound samples (the status counter's per status), so a request costs the
    five sample writes it needs and nothing else. Binding happens at the first request; a
    forked child drops its parent's binding (`os.register_at_fork` below) and binds to its own
    files at its first request, as the library's pid check would have it.
    """

    __slots__ = ("_labels", "_bounds", "_bound")

    def __init__(self, service: str, interface: str, method: str, route: str) -> None:
        self._labels = (service, interface, method, route)
        # Upper bounds, +Inf last: the bucket of a duration is the first bound >= it.
        self._bounds = (*_DURATION_BUCKETS, math.inf)
        self._bound: _BoundSeries | None = None

    @property
    def route(self) -> str:
        return self._labels[3]

    def _bind(self) -> _BoundSeries:
        histogram = http_request_duration_seconds.labels(*self._labels)
        self._bound = _BoundSeries(
            in_progress=_Slot.of(http_requests_in_progress.labels(*self._labels)._value),
            duration_sum=_Slot.of(histogram._sum),
            duration_buckets=tuple(_Slot.of(bucket) for bucket in histogram._buckets),
            by_status={},
        )
        return self._bound

    def unbind(self) -> None:
        self._bound = None

    # `threaded`: whether other threads of this process may write request samples at the same
    # time (a threaded WSGI worker); an event loop's requests are written from its one thread,
    # and the lock would cost more than the writes.

    def started(self, *, threaded: bool = True) -> None:
        in_progress = (self._bound or self._bind()).in_progress
        if threaded:
            with _write_lock:
                in_progress.view[in_progress.index] += 1.0
        else:
            in_progress.view[in_progress.index] += 1.0

    def finished(self, status: int, duration_s: float, *, threaded: bool = True) -> None:
        bound = self._bound or self._bind()
        counter = bound.by_status.get(status)
        if counter is None:
            child = http_requests_total.labels(*self._labels, str(status))
            counter = bound.by_status[status] = _Slot.of(child._value)
        in_progress, total = bound.in_progress, bound.duration_sum
        bucket = bound.duration_buckets[bisect.bisect_left(self._bounds, duration_s)]
        if threaded:
            _write_lock.acquire()
        try:
            in_progress.view[in_progress.index] -= 1.0
            counter.view[counter.index] += 1.0
            total.view[total.index] += duration_s
            bucket.view[bucket.index] += 1.0
        finally:
            if threaded:
                _write_lock.release()


# Bounded: keyed by the method's label (unknown methods share one), and routes are the
# app's templates or UNMATCHED_ROUTE. Every RequestSeries is made here, so every one is here.
_request_series: dict[tuple[str, str, str, str], RequestSeries] = {}


def request_series(service: str, interface: str, method: str, route: str) -> RequestSeries:
    key = (service, interface, method_label(method), route)
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = RequestSeries(*key)
    return series


def _after_fork_in_child() -> None:
    """A forked child writes its own files: drop the bindings to the parent's, and release the
    views before the library closes those mappings (it cannot close a mapping with a view)."""
    global _write_lock
    _write_lock = threading.Lock()  # another thread of the parent may have held it
    for series in _request_series.values():
        series.unbind()
    for view in _views.values():
        view.release()
    _views.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def request_started(service: str, interface: str, method: str, route: str) -> RequestSeries:
    series = request_series(service, interface, method, route)
    series.started()
    return series


def websocket_opened(service: str, interface: str, route: str) -> None:
    websocket_connections.labels(service, interface, route).inc()


def websocket_closed(service: str, interface: str, route: str) -> None:
    websocket_connections.labels(service, interface, route).dec()


def websocket_message(service: str, interface: str, route: str, direction: str) -> None:
    websocket_messages_total.labels(service, interface, route, direction).inc()


def set_chat_broker_up(service: str, interface: str, up: bool) -> None:
    chat_broker_up.labels(service, interface).set(1 if up else 0)


def set_server_gauges(service: str, interface: str, workers: int, capacity: int) -> None:
    """Called in the master, after `prepare_multiproc_dir()`."""
    server_workers.labels(service, interface).set(workers)
    server_worker_capacity.labels(service, interface).set(capacity)


def reset_for_server(service: str, interface: str, workers: int, capacity: int) -> None:
    """In the server's master, before any worker starts: a fresh directory, the server gauges."""
    prepare_multiproc_dir()
    set_server_gauges(service, interface, workers, capacity)


def multiproc_dir() -> Path:
    return Path(os.environ[MULTIPROC_DIR_ENV])


def prepare_multiproc_dir() -> Path:
    """Create the directory and wipe samples of a previous run (call in the master at start)."""
    path = multiproc_dir()
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    return path


# Files of the live gauge modes (livesum, liveall, ...): what mark_process_dead removes.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def pids_with_live_gauges(path: Path) -> set[int]:
    pids: set[int] = set()
    for file in path.glob("gauge_live*.db"):
        match = _LIVE_GAUGE_FILE.match(file.name)
        if match:
            pids.add(int(match.group(1)))
    return pids


def pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def mark_dead(pid: int) -> None:
    """Drop the live gauge samples of a worker that is gone."""
    mark_process_dead(pid, str(multiproc_dir()))


def sweep_dead_processes(path: Path) -> list[int]:
    """Mark every pid with live gauge samples in `path` that no longer runs; return them."""
    dead = sorted(pid for pid in pids_with_live_gauges(path) if not pid_is_alive(pid))
    for pid in dead:
        mark_process_dead(pid, str(path))
    return dead


def sample_files(path: Path) -> list[str]:
    """The directory's sample files, without one a process is creating at this moment.

    prometheus_client creates a file empty and then sizes it; read in between, it fails the
    whole scrape (struct.error), and a new worker's first request or a respawned worker makes
    one. An empty file holds no samples yet. A file removed meanwhile (a dead worker's live
    gauges) is left out too.
    """
    found = []
    for file in path.glob("*.db"):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_size > 0:
                found.append(str(file))
    return found


class SweepingMultiProcessCollector(MultiProcessCollector):
    """MultiProcessCollector that first marks dead workers (Uvicorn has no child_exit hook)."""

    def collect(self) -> Iterable[Any]:
        path = Path(self._path)
        dead = sweep_dead_processes(path)
        if dead:
            logger.info("marked dead worker pids in metrics", extra={"fields": {"pids": dead}})
        return self.merge(sample_files(path), accumulate=True)


def aggregate_registry() -> CollectorRegistry:
    """A registry that reads every process's samples from the multiprocess directory."""
    registry = CollectorRegistry()
    SweepingMultiProcessCollector(registry, path=str(multiproc_dir()))
    return registry


def serve_metrics(bind: Bind) -> WSGIServer:
    """Serve the aggregate on `bind` from a daemon thread of the calling (master) process."""
    server, _thread = start_http_server(bind.port, addr=bind.host, registry=aggregate_registry())
    logger.info("metrics listening", extra={"fields": {"metrics_bind": str(bind)}})
    return server
