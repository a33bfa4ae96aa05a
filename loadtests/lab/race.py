"""Labs 1 and 2: the same burst of N waits on both services.

Sync workers serve ``capacity`` requests at a time, so N requests finish in ceil(N/capacity)
waves of M ms (Little's law bounds throughput at capacity/M). The event loop does not hold a
worker while a request waits, so all N finish together, after about M ms (throughput N/M).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from loadtests.lab import client
from loadtests.lab.model import Check, Knobs, LabResult, Prediction, Verdict
from loadtests.lab.runner import Console, KnobSpec
from loadtests.lab.stack import LabStack, ServiceInfo

N = KnobSpec("n", "requests sent at once", default=10, low=1, high=30)
MS = KnobSpec("ms", "each request's wait in ms", default=300, low=100, high=2000)
#: The measured throughput may fall this far below the prediction (connects, scheduling on a
#: busy machine) or exceed it by this much (clock granularity), as fractions.
THROUGHPUT_BAND = (0.6, 1.1)


@dataclass(frozen=True)
class RaceExpectation:
    interface: str
    n: int
    ms: int
    capacity: int  # requests served at once: workers x threads (WSGI), unbounded (ASGI)

    @property
    def waves(self) -> int:
        return math.ceil(self.n / self.capacity)

    @property
    def makespan_s(self) -> float:
        return self.waves * self.ms / 1000

    @property
    def throughput(self) -> float:
        return self.n / self.makespan_s


@dataclass(frozen=True)
class RaceMeasurement:
    wave_sizes: tuple[int, ...]
    makespan_s: float
    failures: int

    @property
    def waves(self) -> int:
        return len(self.wave_sizes)

    def throughput(self, n: int) -> float:
        return n / self.makespan_s


def expect_sync(info: ServiceInfo, n: int, ms: int) -> tuple[RaceExpectation, Prediction]:
    exp = RaceExpectation("wsgi", n, ms, info.capacity)
    prediction = Prediction(
        f"{n} requests finish in {exp.waves} waves of at most {exp.capacity}, "
        f"{ms} ms apart, over about {exp.makespan_s * 1000:.0f} ms",
        (
            f"capacity = workers x threads = {info.workers} x {info.threads} = {exp.capacity} "
            f"(from /wsgi/healthz, worker class {info.worker_class})",
            f"waves = ceil(N / capacity) = ceil({n} / {exp.capacity}) = {exp.waves}",
            f"makespan = waves x M = {exp.waves} x {ms} ms = {exp.makespan_s * 1000:.0f} ms",
            f"Little's law: throughput X = capacity / W = {exp.capacity} / {ms / 1000:g} s = "
            f"{exp.capacity / (ms / 1000):.1f} req/s at most; this burst: N / makespan = "
            f"{exp.throughput:.1f} req/s",
        ),
    )
    return exp, prediction


def expect_async(
    info: ServiceInfo, wsgi: ServiceInfo, n: int, ms: int
) -> tuple[RaceExpectation, Prediction]:
    # An event loop holds no worker while a request awaits: every request is served at once.
    exp = RaceExpectation("asgi", n, ms, capacity=n)
    sync_waves = math.ceil(n / wsgi.capacity)
    prediction = Prediction(
        f"all {n} requests finish together, after about {ms} ms",
        (
            f"{info.workers} event loops (from /asgi/healthz); a waiting request holds none of "
            "them, so in flight = N",
            f"waves = 1; makespan = M = {ms} ms",
            f"throughput X = N / W = {n} / {ms / 1000:g} s = {exp.throughput:.1f} req/s",
            f"(the sync service, capacity {wsgi.capacity}, needs {sync_waves} waves: "
            f"{sync_waves * ms} ms, {wsgi.capacity / (ms / 1000):.1f} req/s)",
        ),
    )
    return exp, prediction


def judge(lab: str, exp: RaceExpectation, got: RaceMeasurement) -> Verdict:
    low, high = THROUGHPUT_BAND
    checks = (
        Check("waves", exp.waves, got.waves, exp.waves, exp.waves),
        Check("largest wave", min(exp.capacity, exp.n), max(got.wave_sizes), 1, exp.capacity),
        Check(
            "throughput",
            round(exp.throughput, 2),
            round(got.throughput(exp.n), 2),
            round(low * exp.throughput, 2),
            round(high * exp.throughput, 2),
            " req/s",
        ),
        Check("failed requests", 0, got.failures, 0, 0),
    )
    notes = (
        f"wave sizes {list(got.wave_sizes)}, makespan {got.makespan_s * 1000:.0f} ms "
        f"(predicted {exp.makespan_s * 1000:.0f} ms); throughput band "
        f"{low:g}..{high:g} x predicted",
    )
    return Verdict.from_checks(lab, checks, notes)


async def _measure(stack: LabStack, exp: RaceExpectation, console: Console) -> RaceMeasurement:
    path = f"/{exp.interface}/io?ms={exp.ms}"
    console.say(f"Sending {exp.n} x GET {path} at once ...")
    timings, makespan = await client.burst(
        stack.public_url, path, exp.n, console.progress(exp.interface)
    )
    # Requests of one wave finish within a few ms; waves are M ms apart: half of M splits them.
    sizes = client.waves([t.done_s for t in timings], gap_s=exp.ms / 2000)
    failures = sum(1 for t in timings if t.status != 200)
    return RaceMeasurement(tuple(sizes), makespan, failures)


def run_sync(stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    n, ms = N.value(knobs.n), MS.value(knobs.ms)
    exp, prediction = expect_sync(stack.service("wsgi"), n, ms)
    console.expect(prediction)
    got = asyncio.run(_measure(stack, exp, console))
    verdict = judge("sync-capacity", exp, got)
    console.verdict(verdict)
    return LabResult(prediction, got, verdict)


def run_async(stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    n, ms = N.value(knobs.n), MS.value(knobs.ms)
    exp, prediction = expect_async(stack.service("asgi"), stack.service("wsgi"), n, ms)
    console.expect(prediction)
    got = asyncio.run(_measure(stack, exp, console))
    verdict = judge("async-waits", exp, got)
    console.verdict(verdict)
    return LabResult(prediction, got, verdict)
