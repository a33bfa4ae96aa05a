"""Locust's live statistics as Prometheus metrics, plus the file-discovery target file.

Served by a small prometheus-client HTTP listener on ``LOCUST_METRICS_BIND`` (native default
``127.0.0.1:9646``; the test stack uses ``127.0.0.1:19646``; Docker ``0.0.0.0:9646``), on the
master only in distributed mode. Metrics are computed at scrape time from the runner's stats:

* ``locust_users`` - running users;
* ``locust_requests_total{name,method,target}`` / ``locust_failures_total{...}`` - counters that
  stay monotonic across Locust's "reset stats" (the bench resets after each warm-up);
* ``locust_response_time_seconds{name,method,target,quantile}`` - p50/p95/p99 over the last ~10 s
  when Locust keeps its response-time cache (web UI / headless), else since the last reset;
* ``locust_current_rps{name,method,target}``, ``locust_cpu_usage_percent``, ``locust_running``.

While the exporter runs, ``$PROMETHEUS_TARGETS_DIR/locust.json`` tells Prometheus where to
scrape; it is removed when the exporter stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("loadtests.exporter")

DEFAULT_BIND = "127.0.0.1:9646"
QUANTILES = (0.5, 0.95, 0.99)


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bind address must be HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)


def scrape_target(bind: str) -> str:
    """The address Prometheus should scrape for a listen address (0.0.0.0 -> this host's name)."""
    host, port = parse_bind(bind)
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"{host}:{port}"


class _Monotonic:
    """Turns counters that Locust resets into monotonic ones: on a drop, keep the old total."""

    def __init__(self) -> None:
        self._last: dict[Any, float] = {}
        self._offset: dict[Any, float] = {}

    def __call__(self, key: Any, value: float) -> float:
        last = self._last.get(key, 0.0)
        if value < last:
            self._offset[key] = self._offset.get(key, 0.0) + last
        self._last[key] = value
        return self._offset.get(key, 0.0) + value

    def keys(self):
        return self._last.keys()


class LocustCollector:
    def __init__(self, environment) -> None:
        self.environment = environment
        self._requests = _Monotonic()
        self._failures = _Monotonic()

    def _target(self) -> str:
        settings = getattr(self.environment, "gateway_settings", None)
        return getattr(settings, "target", "") or ""

    def collect(self):
        runner = self.environment.runner
        target = self._target()
        users = GaugeMetricFamily("locust_users", "Running Locust users", labels=["target"])
        running = GaugeMetricFamily(
            "locust_running", "1 while a test is spawning or running", labels=["target"]
        )
        cpu = GaugeMetricFamily(
            "locust_cpu_usage_percent", "CPU usage of the Locust (master) process", labels=[]
        )
        requests = CounterMetricFamily(
            "locust_requests", "Requests recorded by Locust", labels=["name", "method", "target"]
        )
        failures = CounterMetricFamily(
            "locust_failures",
            "Failed requests recorded by Locust",
            labels=["name", "method", "target"],
        )
        rps = GaugeMetricFamily(
            "locust_current_rps",
            "Requests per second, last ~10 s",
            labels=["name", "method", "target"],
        )
        rt = GaugeMetricFamily(
            "locust_response_time_seconds",
            "Response-time percentiles (last ~10 s, else since the last reset)",
            labels=["name", "method", "target", "quantile"],
        )
        seen = set()
        if runner is not None:
            users.add_metric([target], runner.user_count)
            running.add_metric([target], 1 if runner.state in ("spawning", "running") else 0)
            cpu.add_metric([], getattr(runner, "current_cpu_usage", 0.0))
            for (name, method), entry in list(runner.stats.entries.items()):
                labels = [name, method, target]
                key = (name, method, target)
                seen.add(key)
                requests.add_metric(labels, self._requests(key, entry.num_requests))
                failures.add_metric(labels, self._failures(key, entry.num_failures))
                rps.add_metric(labels, entry.current_rps)
                if entry.num_requests:
                    for q in QUANTILES:
                        value = None
                        if entry.use_response_times_cache:
                            try:
                                value = entry.get_current_response_time_percentile(q)
                            except ValueError:
                                value = None
                        if value is None:
                            value = entry.get_response_time_percentile(q)
                        rt.add_metric([*labels, str(q)], (value or 0) / 1000.0)
        else:
            users.add_metric([target], 0)
            running.add_metric([target], 0)
        # Entries dropped by a reset (or an earlier run's target) keep their totals.
        for key in list(self._requests.keys()):
            if key not in seen:
                requests.add_metric(list(key), self._requests(key, 0))
                failures.add_metric(list(key), self._failures(key, 0))
        yield from (users, running, cpu, requests, failures, rps, rt)


class Exporter:
    """Owns the HTTP listener and the file-discovery file."""

    def __init__(self, environment, bind: str, targets_dir: str | None, labels: dict[str, str]):
        self.environment = environment
        self.bind = bind
        self.targets_dir = Path(targets_dir) if targets_dir else None
        self.labels = labels
        self.server = None
        self.sd_file: Path | None = None

    def start(self) -> bool:
        from prometheus_client import start_http_server

        host, port = parse_bind(self.bind)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LocustCollector(self.environment))
        try:
            self.server, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            log.warning("Locust metrics exporter not started on %s: %s", self.bind, exc)
            return False
        log.info("Locust metrics on http://%s/metrics", self.bind)
        if self.targets_dir is not None:
            self.write_sd_file()
        return True

    def write_sd_file(self) -> None:
        assert self.targets_dir is not None
        try:
            self.targets_dir.mkdir(parents=True, exist_ok=True)
            path = self.targets_dir / "locust.json"
            tmp = path.with_suffix(".json.partial")
            doc = [{"targets": [scrape_target(self.bind)], "labels": self.labels}]
            tmp.write_text(json.dumps(doc, indent=2) + "\n")
            os.replace(tmp, path)  # atomic: Prometheus never reads half a file
            self.sd_file = path
        except OSError as exc:
            log.warning("could not write %s/locust.json: %s", self.targets_dir, exc)

    def stop(self) -> None:
        if self.sd_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.sd_file.unlink()
            self.sd_file = None
        if self.server is not None:
            try:
                self.server.shutdown()
                self.server.server_close()
            except Exception:
                pass
            self.server = None
