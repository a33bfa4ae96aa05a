"""Drives Locust (library API, one local runner in this process) through the bench's steps.

Imports Locust, so gevent monkey-patches the standard library: import this module only after
the options are parsed, and before anything that imports ``ssl`` or ``urllib.request``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import gevent
import locust
import psutil
from locust.env import Environment
from locust.stats import StatsCSV

from loadtests import scenarios
from loadtests.bench import analysis
from loadtests.bench.options import BenchOptions
from loadtests.exporter import DEFAULT_BIND, Exporter
from loadtests.settings import SCENARIO_CLASSES

#: The Locust statistics entry each scenario's figures come from: (method, name).
PRIMARY = {
    "hello": ("GET", "/hello"),
    "io": ("GET", "/io"),
    "cpu": ("GET", "/cpu"),
    "stream": ("SSE", "/stream [complete]"),
    "ws_echo": ("WS", "/ws/echo [rtt]"),
    "ws_chat": ("WS", "/ws/chat [fan-out]"),
}
#: Route each scenario loads (the server's `route` label ends with it).
ROUTE = {
    "hello": "/hello",
    "io": "/io",
    "cpu": "/cpu",
    "stream": "/stream",
    "ws_echo": "/ws/echo",
    "ws_chat": "/ws/chat",
}
SERVICE = {"wsgi": "flask", "asgi": "fastapi"}
PERCENTILES = [0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 1.0]


class _Current:
    """What the exporter reads: the runner and settings of the block running now."""

    runner = None
    gateway_settings = None


class CpuSampler:
    """Samples this process's and the host's CPU use once a second."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.samples: list[tuple[float, float, float]] = []
        self.process.cpu_percent(None)
        psutil.cpu_percent(None)
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        while True:
            gevent.sleep(1.0)
            self.samples.append(
                (time.time(), self.process.cpu_percent(None), psutil.cpu_percent(None))
            )

    def window(self, t0: float, t1: float) -> dict:
        inside = [s for s in self.samples if t0 < s[0] <= t1 + 0.5]
        if not inside:
            return {"cpu_mean": None, "cpu_max": None, "host_cpu_mean": None, "samples": 0}
        procs = [s[1] for s in inside]
        hosts = [s[2] for s in inside]
        return {
            "cpu_mean": sum(procs) / len(procs),
            "cpu_max": max(procs),
            "host_cpu_mean": sum(hosts) / len(hosts),
            "samples": len(inside),
        }

    def stop(self) -> None:
        self.greenlet.kill(block=False)


def _entry_figures(entry, elapsed: float) -> dict:
    n = entry.num_requests
    return {
        "method": entry.method,
        "name": entry.name,
        "requests": n,
        "failures": entry.num_failures,
        "rps": n / elapsed if elapsed > 0 else None,
        "avg_ms": entry.avg_response_time if n else None,
        "min_ms": entry.min_response_time if n else None,
        "max_ms": entry.max_response_time if n else None,
        "p50_ms": entry.get_response_time_percentile(0.5) if n else None,
        "p95_ms": entry.get_response_time_percentile(0.95) if n else None,
        "p99_ms": entry.get_response_time_percentile(0.99) if n else None,
        "p999_ms": entry.get_response_time_percentile(0.999) if n else None,
    }


def _write_csvs(env: Environment, folder: Path, stem: str) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    writer = StatsCSV(env, PERCENTILES)
    paths = {}
    for kind, method in (
        ("stats", writer.requests_csv),
        ("failures", writer.failures_csv),
        ("exceptions", writer.exceptions_csv),
    ):
        path = folder / f"{stem}_{kind}.csv"
        with path.open("w", newline="") as fh:
            method(csv.writer(fh))
        paths[kind] = str(path.relative_to(folder.parent))
    return paths


class Driver:
    def __init__(
        self,
        opts: BenchOptions,
        run_dir: Path,
        health: dict,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.opts = opts
        self.run_dir = run_dir
        self.health = health
        self.progress = progress
        self.current = _Current()
        self.exporter: Exporter | None = None
        self.steps_done = 0
        self.steps_total = len(opts.steps())
        self.started = time.time()
        self.step_rows: list[dict] = []
        self.blocks: list[dict] = []

    # -------------------------------------------------------------- exporter
    def start_exporter(self) -> None:
        if os.environ.get("LOCUST_METRICS_DISABLE"):
            return
        bind = os.environ.get("LOCUST_METRICS_BIND", DEFAULT_BIND)
        self.exporter = Exporter(
            self.current,
            bind=bind,
            targets_dir=os.environ.get("PROMETHEUS_TARGETS_DIR"),
            labels={"role": "bench"},
        )
        if not self.exporter.start():
            self.exporter = None

    def stop_exporter(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None

    # -------------------------------------------------------------- progress
    def _left_s(self) -> float:
        per_step = self.opts.warmup_s + self.opts.measure_s
        return (self.steps_total - self.steps_done) * per_step

    def _say(self, text: str) -> None:
        self.progress(text)

    # -------------------------------------------------------------- one block
    def run_block(self, scenario: str, target: str, levels: tuple[int, ...]) -> dict:
        opts = self.opts
        settings = opts.scenario_settings(target)
        user_class = getattr(scenarios, SCENARIO_CLASSES[scenario])
        env = Environment(user_classes=[user_class], host=opts.host(target), stop_timeout=None)
        env.gateway_settings = settings
        runner = env.create_local_runner()
        warnings: list[float] = []
        env.events.cpu_warning.add_listener(lambda **_kw: warnings.append(time.time()))
        self.current.runner = runner
        self.current.gateway_settings = settings

        counts_before = {k: v for k, v in scenarios.COUNTS.items() if k[:2] == (target, scenario)}
        sampler = CpuSampler()
        capacity = analysis.capacity_of(self.health.get(target, {}), target)
        # The first event is sent at once, then one every interval: (events - 1) intervals.
        stream_s = (settings.stream_events - 1) * settings.stream_interval_ms / 1000.0
        block = {
            "scenario": scenario,
            "target": target,
            "service": SERVICE[target],
            "route": ROUTE[scenario],
            "t0": time.time(),
        }
        rows = []
        try:
            previous = 0
            for users in levels:
                self.steps_done += 1
                left = self._left_s()
                self._say(
                    f"[{self.steps_done}/{self.steps_total}] {scenario} on {target}: {users} users "
                    f"- warm-up {opts.warmup_s:g} s, measure {opts.measure_s:g} s "
                    f"(~{int(left // 60)}m{int(left % 60):02d}s left)"
                )
                spawn_rate = min(100.0, max(10.0, float(users - previous)))
                runner.start(users, spawn_rate=spawn_rate)
                previous = users
                gevent.sleep(opts.warmup_s)
                # Let the spawn finish even if the warm-up was too short for it.
                deadline = time.time() + 10
                while runner.user_count < users and time.time() < deadline:
                    gevent.sleep(0.1)
                env.stats.reset_all()
                runner.exceptions.clear()
                tm0 = time.time()
                warn_before = len(warnings)
                gevent.sleep(opts.measure_s)
                tm1 = time.time()
                elapsed = tm1 - tm0
                entries = {
                    f"{e.method} {e.name}": _entry_figures(e, elapsed)
                    for e in env.stats.entries.values()
                }
                stem = f"{scenario}_{target}_{users:04d}u"
                csvs = _write_csvs(env, self.run_dir / "csv", stem)
                method, name = PRIMARY[scenario]
                primary = entries.get(f"{method} {name}") or _entry_figures(
                    env.stats.get(name, method), elapsed
                )
                cpu = sampler.window(tm0, tm1)
                ideal = analysis.ideal_rps(
                    scenario,
                    users,
                    capacity,
                    io_ms=settings.io_ms,
                    stream_s=stream_s,
                    ws_rate=settings.ws_rate,
                )
                flight = (
                    analysis.in_flight(primary["rps"], primary["avg_ms"])
                    if primary["avg_ms"] is not None and not scenario.startswith("ws_")
                    else None
                )
                bound, reasons = analysis.loadgen_verdict(
                    cpu["cpu_mean"],
                    len(warnings) > warn_before,
                    primary["rps"] or 0.0,
                    ideal,
                    flight,
                    users,
                    cpu["host_cpu_mean"],
                )
                fails = primary["failures"]
                row = {
                    "scenario": scenario,
                    "target": target,
                    "users": users,
                    "running_users": runner.user_count,
                    "t_start": tm0 - opts.warmup_s,
                    "t_measure_start": tm0,
                    "t_measure_end": tm1,
                    "measure_s": elapsed,
                    "primary": f"{method} {name}",
                    "requests": primary["requests"],
                    "failures": fails,
                    "fail_pct": 100.0 * fails / primary["requests"]
                    if primary["requests"]
                    else None,
                    "rps": primary["rps"],
                    "avg_ms": primary["avg_ms"],
                    "p50_ms": primary["p50_ms"],
                    "p95_ms": primary["p95_ms"],
                    "p99_ms": primary["p99_ms"],
                    "max_ms": primary["max_ms"],
                    "capacity": capacity,
                    "ideal_rps": ideal,
                    "pct_of_ideal": analysis.percent_of(primary["rps"] or 0.0, ideal),
                    "gap_pct": analysis.gap_pct(primary["rps"] or 0.0, ideal),
                    "in_flight": flight,
                    "loadgen": cpu | {"cpu_warning": len(warnings) > warn_before},
                    "loadgen_bound": bound,
                    "loadgen_reasons": reasons,
                    "entries": entries,
                    "errors": [
                        {
                            "method": e.method,
                            "name": e.name,
                            "error": str(e.error),
                            "occurrences": e.occurrences,
                        }
                        for e in env.stats.errors.values()
                    ],
                    "csv": csvs,
                }
                if scenario == "stream":
                    first = entries.get("SSE /stream [first event]")
                    if first:
                        row["ttfe_p50_ms"] = first["p50_ms"]
                        row["ttfe_p95_ms"] = first["p95_ms"]
                        row["ttfe_p99_ms"] = first["p99_ms"]
                if scenario == "ws_echo":
                    row["offered_rps"] = users * settings.ws_rate
                rows.append(row)
                note = " [load-generator bound]" if bound else ""
                self._say(
                    f"      {_num(row['rps'])}/s  p50 {_num(row['p50_ms'])} ms  "
                    f"p95 {_num(row['p95_ms'])} ms  p99 {_num(row['p99_ms'])} ms  "
                    f"fail {fails}  locust cpu {_num(cpu['cpu_mean'])} %{note}"
                )
        finally:
            runner.stop()
            block["t1"] = time.time()
            runner.quit()
            sampler.stop()
            self.current.runner = None
        counts = {
            what: scenarios.COUNTS[(target, scenario, what)]
            - counts_before.get((target, scenario, what), 0)
            for what in ("started", "completed", "gateway_error")
        }
        block["client"] = counts
        self.step_rows.extend(rows)
        self.blocks.append(block)
        return block

    def run(self) -> None:
        self.start_exporter()
        try:
            opts = self.opts
            for scenario in opts.scenarios:
                for target in opts.targets:
                    if not any(s == scenario and t == target for s, t, _ in opts.steps()):
                        continue
                    self.run_block(scenario, target, opts.users[scenario])
        finally:
            self.stop_exporter()


def _num(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


def versions() -> dict:
    import platform
    import sys
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("locust", "websockets", "matplotlib", "prometheus-client", "gevent"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["locust_module"] = getattr(locust, "__version__", None)
    return out


def dump_json(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
