"""Drives Locust (library API, one local runner in this process) through the bench's steps.

Imports Locust, so gevent monkey-patches the standard library: import this module only after
the options are parsed, and before anything that imports ``ssl`` or ``urllib.request``.
"""

from __future__ import annotations

import csv
import json
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import locust
import psutil
from locust.env import Environment
from locust.stats import StatsCSV

from loadtests import scenarios
from loadtests.bench import analysis, numbers, poll
from loadtests.bench.options import BenchOptions
from loadtests.bench.results import CLOSED, OPEN, Block, ClientCounts, Step, TimelineBin
from loadtests.bench.targets import Target
from loadtests.exporter import DEFAULT_BIND, Exporter
from loadtests.settings import OPEN_SCENARIO_CLASSES, SCENARIO_CLASSES, ScenarioSettings

# An open-model block may leave minutes of queued work only when run far past capacity.
DRAIN_MAX_S = 300.0
# A poll block's queue drains within one poll timeout per slot and round (options.drain_s);
# beyond this something is wrong, and the run goes on.
POLL_DRAIN_MAX_S = 60.0

#: The Locust statistics entry each scenario's figures come from: (method, name).
PRIMARY = {
    "hello": ("GET", "/hello"),
    "io": ("GET", "/io"),
    "cpu": ("GET", "/cpu"),
    "stream": ("SSE", "/stream [complete]"),
    "ws_echo": ("WS", "/ws/echo [rtt]"),
    "ws_chat": ("WS", "/ws/chat [fan-out]"),
    "poll": ("GET", "/poll"),
}
#: Route each scenario loads (the server's `route` label ends with it).
ROUTE = {
    "hello": "/hello",
    "io": "/io",
    "cpu": "/cpu",
    "stream": "/stream",
    "ws_echo": "/ws/echo",
    "ws_chat": "/ws/chat",
    "poll": "/poll",
}
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


@dataclass
class _StepContext:
    """What every step of a block shares: Locust's environment and runner, the CPU sampler."""

    env: Environment
    runner: Any
    sampler: CpuSampler
    warnings: list[float]
    settings: ScenarioSettings
    capacity: int | None
    #: Open model: the schedule the user follows (None: closed model).
    schedule: scenarios.OpenSchedule | None = None

    @property
    def room(self) -> scenarios.PollRoom | None:
        """The poll scenario's room, once its first user started."""
        return getattr(self.env, "gateway_poll", None)


class Driver:
    def __init__(
        self,
        opts: BenchOptions,
        run_dir: Path,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.opts = opts
        self.run_dir = run_dir
        self.progress = progress
        self.current = _Current()
        self.exporter: Exporter | None = None
        self.steps_done = 0
        self.steps_total = len(opts.steps())
        self.started = time.time()
        self.blocks: list[Block] = []

    # -------------------------------------------------------------- exporter
    def start_exporter(self) -> None:
        if os.environ.get("LOCUST_METRICS_DISABLE"):
            return
        self.exporter = Exporter(
            self.current,
            bind=self.opts.metrics_bind or DEFAULT_BIND,
            targets_dir=self.opts.targets_dir,
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
        """Time left by the plan: the steps not started yet, and this one."""
        return self.opts.estimated_seconds() * (1 - (self.steps_done - 1) / self.steps_total)

    def _say(self, text: str) -> None:
        self.progress(text)

    # -------------------------------------------------------------- one block
    def run_block(self, scenario: str, target: Target, levels: tuple[float, ...]) -> Block:
        """Run `levels` back to back on one Locust runner; the block is kept once complete."""
        settings = self.opts.scenario_settings(target)
        classes = OPEN_SCENARIO_CLASSES if self.opts.model == OPEN else SCENARIO_CLASSES
        user_class = getattr(scenarios, classes[scenario])
        env = Environment(user_classes=[user_class], host=self.opts.host(target), stop_timeout=None)
        env.gateway_settings = settings
        if self.opts.model == OPEN:
            env.gateway_schedule = scenarios.OpenSchedule(levels[0])
        runner = env.create_local_runner()
        warnings: list[float] = []
        env.events.cpu_warning.add_listener(lambda **_kw: warnings.append(time.time()))
        self.current.runner = runner
        self.current.gateway_settings = settings
        counts_before = dict(scenarios.COUNTS)
        block = Block(scenario, target.name, target.variant, ROUTE[scenario], t0=time.time())
        ctx = _StepContext(
            env,
            runner,
            CpuSampler(),
            warnings,
            settings,
            target.capacity,
            getattr(env, "gateway_schedule", None),
        )
        try:
            previous = 0.0
            for level in levels:
                block.steps.append(self._run_step(block, ctx, level, previous))
                previous = level
        finally:
            runner.stop()
            block.t1 = time.time()
            runner.quit()
            ctx.sampler.stop()
            self.current.runner = None
        if ctx.schedule is not None:
            self._drain(target, DRAIN_MAX_S)
        if ctx.room is not None:
            # The polls still queued behind busy slots would hold them into the next block:
            # the publisher goes on until they are through.
            if self.opts.drain_s(scenario, target) > 0:
                self._drain(target, POLL_DRAIN_MAX_S)
            ctx.room.stop()
        key = (target.name, scenario)
        block.client = ClientCounts(
            **{
                what: scenarios.COUNTS[(*key, what)] - counts_before.get((*key, what), 0)
                for what in ("started", "completed", "gateway_error")
            }
        )
        self.blocks.append(block)
        return block

    def _drain(self, target: Target, limit_s: float) -> None:
        """Wait out the backlog a block leaves in front of a saturated server.

        Requests the bench gave up on are still queued at the server (a sync worker serves each
        in turn after nginx has answered 499), and would slow whatever runs next. One request
        sent now waits behind all of them, so its answer says the queue is empty.
        """
        name = target.name
        self._say(f"  waiting for {name}'s queue to drain before the next block ...")
        started = time.time()
        try:
            with urllib.request.urlopen(self.opts.healthz_url(target), timeout=limit_s):
                pass
        except OSError as error:
            self._say(f"  {name} did not drain within {limit_s:g} s ({error}); going on")
            return
        self._say(f"  drained in {time.time() - started:.1f} s")

    def _start_level(self, ctx: _StepContext, level: float, previous: float) -> int:
        """Set the load of a step: users (closed) or the schedule's rate (open); -> users wanted."""
        if ctx.schedule is None:
            users = int(level)
            ctx.runner.start(users, spawn_rate=min(100.0, max(10.0, float(users - previous))))
            return users
        ctx.schedule.rps = level
        if ctx.runner.user_count == 0:
            ctx.runner.start(1, spawn_rate=1)
        return 1

    def _run_step(self, block: Block, ctx: _StepContext, level: float, previous: float) -> Step:
        """Ramp to `level`, warm up, reset the statistics, measure, and read the figures."""
        opts = self.opts
        self.steps_done += 1
        left = self._left_s()
        what = f"{level:g} req/s offered" if ctx.schedule else f"{int(level)} users"
        self._say(
            f"[{self.steps_done}/{self.steps_total}] {block.scenario} on {block.target}: "
            f"{what} - warm-up {opts.warmup_s:g} s, measure {opts.measure_s:g} s "
            f"(~{int(left // 60)}m{int(left % 60):02d}s left)"
        )
        users = self._start_level(ctx, level, previous)
        gevent.sleep(opts.warmup_s)
        # Let the spawn finish even if the warm-up was too short for it.
        deadline = time.time() + 10
        while ctx.runner.user_count < users and time.time() < deadline:
            gevent.sleep(0.1)
        ctx.env.stats.reset_all()
        ctx.runner.exceptions.clear()
        tm0 = time.time()
        warn_before = len(ctx.warnings)
        gevent.sleep(opts.measure_s)
        tm1 = time.time()
        step = self._figures(block, ctx, level, tm0, tm1, len(ctx.warnings) > warn_before)
        self._say(_progress_line(step))
        return step

    def _figures(
        self, block: Block, ctx: _StepContext, level: float, tm0: float, tm1: float, warned: bool
    ) -> Step:
        """The measured window as a Step: Locust's entries, the bound and the verdicts."""
        scenario, elapsed, settings = block.scenario, tm1 - tm0, ctx.settings
        entries = {
            f"{e.method} {e.name}": _entry_figures(e, elapsed)
            for e in ctx.env.stats.entries.values()
        }
        users = None if ctx.schedule else int(level)
        stem = f"{level:g}rps" if ctx.schedule else f"{int(level):04d}u"
        csvs = _write_csvs(ctx.env, self.run_dir / "csv", f"{scenario}_{block.target}_{stem}")
        method, name = PRIMARY[scenario]
        primary = entries.get(f"{method} {name}") or _entry_figures(
            ctx.env.stats.get(name, method), elapsed
        )
        cpu = ctx.sampler.window(tm0, tm1)
        ideal = analysis.ideal_rps(
            scenario,
            users or 0,
            ctx.capacity,
            io_ms=settings.io_ms,
            stream_s=settings.stream_s,
            ws_rate=settings.ws_rate,
            poll_wait_s=settings.poll_wait_s,
        )
        if ctx.schedule is not None:
            ideal = analysis.open_bound(
                scenario, level, ctx.capacity, io_ms=settings.io_ms, stream_s=settings.stream_s
            )
        flight = (
            analysis.in_flight(primary["rps"], primary["avg_ms"])
            if primary["avg_ms"] is not None and not scenario.startswith("ws_")
            else None
        )
        achieved = primary["rps"] or 0.0
        bound, reasons = analysis.loadgen_verdict(
            cpu["cpu_mean"], warned, achieved, ideal, flight, users or 0, cpu["host_cpu_mean"]
        )
        schedule = _open_figures(ctx.schedule, tm0, tm1) if ctx.schedule else {}
        room = ctx.room
        polls = poll.window_figures(room.published, room.answers, tm0, tm1) if room else None
        requests, fails = primary["requests"], primary["failures"]
        first = entries.get("SSE /stream [first event]") if scenario == "stream" else None
        return Step(
            scenario=scenario,
            target=block.target,
            users=users,
            running_users=ctx.runner.user_count,
            t_start=tm0 - self.opts.warmup_s,
            t_measure_start=tm0,
            t_measure_end=tm1,
            measure_s=elapsed,
            primary=f"{method} {name}",
            requests=requests,
            failures=fails,
            fail_pct=100.0 * fails / requests if requests else None,
            rps=primary["rps"],
            avg_ms=primary["avg_ms"],
            p50_ms=primary["p50_ms"],
            p95_ms=primary["p95_ms"],
            p99_ms=primary["p99_ms"],
            max_ms=primary["max_ms"],
            capacity=ctx.capacity,
            ideal_rps=ideal,
            pct_of_ideal=analysis.percent_of(achieved, ideal),
            gap_pct=analysis.gap_pct(achieved, ideal),
            in_flight=flight,
            loadgen=cpu | {"cpu_warning": warned},
            loadgen_bound=bound,
            loadgen_reasons=reasons,
            entries=entries,
            errors=[
                {
                    "method": e.method,
                    "name": e.name,
                    "error": str(e.error),
                    "occurrences": e.occurrences,
                }
                for e in ctx.env.stats.errors.values()
            ],
            csv=csvs,
            ttfe_p50_ms=first["p50_ms"] if first else None,
            ttfe_p95_ms=first["p95_ms"] if first else None,
            ttfe_p99_ms=first["p99_ms"] if first else None,
            offered_rps=_offered(scenario, level, ctx, settings),
            model=OPEN if ctx.schedule else CLOSED,
            poll=polls,
            **schedule,
        )

    def run(self) -> None:
        self.start_exporter()
        try:
            for scenario, target in self.opts.blocks():
                self.run_block(scenario, target, self.opts.levels(scenario))
        finally:
            self.stop_exporter()


def _offered(scenario: str, level: float, ctx: _StepContext, settings: ScenarioSettings):
    if ctx.schedule is not None:
        return level
    return level * settings.ws_rate if scenario == "ws_echo" else None


def _open_figures(schedule: scenarios.OpenSchedule, tm0: float, tm1: float) -> dict:
    """An open-model window: sends scheduled in it, how many stayed unanswered, the timeline."""
    sent = sum(1 for due in schedule.sent if tm0 <= due <= tm1)
    answered = [(done, ms) for done, ms in schedule.answered if tm0 <= done <= tm1]
    of_window = sum(1 for done, ms in answered if done - ms / 1000 >= tm0)
    width = max(0.5, (tm1 - tm0) / 10)
    bins: dict[int, list[float]] = {}
    for done, ms in answered:
        bins.setdefault(min(int((done - tm0) / width), 9), []).append(ms)
    timeline = [
        TimelineBin(
            t_s=round((k + 1) * width, 3),
            answered=len(bins.get(k, [])),
            p50_ms=analysis.median(bins[k]) if bins.get(k) else None,
            max_ms=max(bins[k]) if bins.get(k) else None,
        )
        for k in range(10)
    ]
    return {"sent": sent, "unanswered": max(0, sent - of_window), "timeline": timeline}


def _progress_line(step: Step) -> str:
    n, note = numbers.number, " [load-generator bound]" if step.loadgen_bound else ""
    offered = f"{n(step.offered_rps)}/s offered, " if step.is_open else ""
    backlog = f"  unanswered {step.unanswered} of {step.sent}" if step.is_open else ""
    if step.poll is not None:
        p = step.poll
        backlog += (
            f"  with message {numbers.pct(100 * p.message_share if p.answered else None)}"
            f"  held per message {n(p.held_mean)} (capacity {step.capacity or 'unbounded'})"
        )
    return (
        f"      {offered}{n(step.rps)}/s  p50 {numbers.ms(step.p50_ms)}  "
        f"p95 {numbers.ms(step.p95_ms)}  p99 {numbers.ms(step.p99_ms)}  fail {step.failures}"
        f"{backlog}  locust cpu {numbers.pct(step.loadgen['cpu_mean'])}{note}"
    )


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
