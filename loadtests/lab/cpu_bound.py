"""Lab 3: CPU-bound work does not speed up with async.

A pure-Python loop holds its process (and, on ASGI, the event loop) while it runs, so a burst
of /cpu requests is served at most min(cores, worker processes) at a time on either service:
the two throughputs match, whatever the interface.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from dataclasses import dataclass

from loadtests.lab import client
from loadtests.lab.model import Check, Knobs, LabResult, Prediction, Verdict
from loadtests.lab.runner import Console, KnobSpec
from loadtests.lab.stack import LabStack

N = KnobSpec("n", "requests sent at once to each service", default=8, low=2, high=30)
#: /cpu?n= work per request: tens of ms of pure Python, long enough to dwarf the overheads.
WORK_N = 1_000_000
CALIBRATION_REQUESTS = 3
#: ASGI/WSGI throughput ratio counted as "no speed-up": above the high end async would have
#: helped; below the low end the event loops were unevenly loaded (connections land on loops
#: unevenly, while a sync worker takes a request only when free).
RATIO_BAND = (0.5, 1.4)
#: Measured parallelism may exceed the bound by this much (timer and scheduling noise).
PARALLELISM_SLACK = 1.15


@dataclass(frozen=True)
class CpuSide:
    interface: str
    processes: int
    single_ms: float  # one request's server time, measured alone
    makespan_s: float
    busy_ms: float  # the server time of every request of the burst, summed
    failures: int

    def throughput(self, n: int) -> float:
        return n / self.makespan_s

    @property
    def parallelism(self) -> float:
        """Requests worked on at once, on average: server time / wall time."""
        return self.busy_ms / 1000 / self.makespan_s


@dataclass(frozen=True)
class CpuMeasurement:
    n: int
    cores: int
    wsgi: CpuSide
    asgi: CpuSide

    @property
    def ratio(self) -> float:
        return self.asgi.throughput(self.n) / self.wsgi.throughput(self.n)


def judge(got: CpuMeasurement) -> Verdict:
    low, high = RATIO_BAND
    checks = [Check("ASGI / WSGI throughput", 1.0, round(got.ratio, 2), low, high)]
    for side in (got.wsgi, got.asgi):
        bound = min(got.cores, side.processes)
        checks.append(
            Check(
                f"{side.interface} requests worked on at once",
                bound,
                round(side.parallelism, 2),
                0,
                round(bound * PARALLELISM_SLACK, 2),
            )
        )
    checks += [
        Check(f"{s.interface} failed requests", 0, s.failures, 0, 0) for s in (got.wsgi, got.asgi)
    ]
    notes = tuple(
        f"{s.interface}: one request alone {s.single_ms:.0f} ms, burst of {got.n} in "
        f"{s.makespan_s * 1000:.0f} ms = {s.throughput(got.n):.1f} req/s"
        for s in (got.wsgi, got.asgi)
    ) + (f"ratio band {low:g}..{high:g}; parallelism bound x{PARALLELISM_SLACK:g} for noise",)
    return Verdict.from_checks("cpu-bound", tuple(checks), notes)


async def _side(
    stack: LabStack, interface: str, processes: int, n: int, console: Console
) -> CpuSide:
    path = f"/{interface}/cpu?n={WORK_N}"
    alone = []
    for _ in range(CALIBRATION_REQUESTS):
        timings, _ = await client.burst(stack.public_url, path, 1)
        alone.append(timings[0].server_ms or 0.0)
    console.say(f"  {interface}: one request alone takes {statistics.median(alone):.0f} ms")
    console.say(f"Sending {n} x GET {path} at once ...")
    timings, makespan = await client.burst(stack.public_url, path, n, console.progress(interface))
    return CpuSide(
        interface,
        processes,
        statistics.median(alone),
        makespan,
        sum(t.server_ms or 0.0 for t in timings),
        sum(1 for t in timings if t.status != 200),
    )


def run(stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    n = N.value(knobs.n)
    wsgi, asgi = stack.service("wsgi"), stack.service("asgi")
    cores = os.cpu_count() or 1
    prediction = Prediction(
        "the same CPU-bound burst gets the same throughput from both services (ratio about 1)",
        (
            f"cores = {cores}; WSGI processes = {wsgi.workers} "
            f"(x {wsgi.threads} threads, one GIL each); "
            f"ASGI processes = {asgi.workers} event loops",
            f"work at once <= min(cores, processes): WSGI {min(cores, wsgi.workers)}, "
            f"ASGI {min(cores, asgi.workers)}",
            f"throughput <= that bound / one request's time (measured first, /cpu?n={WORK_N})",
            "an awaiting coroutine frees the loop; a computing one does not, so async adds no "
            f"parallelism: ASGI / WSGI throughput = 1 (band {RATIO_BAND[0]:g}..{RATIO_BAND[1]:g})",
        ),
    )
    console.expect(prediction)

    async def measure() -> CpuMeasurement:
        return CpuMeasurement(
            n,
            cores,
            await _side(stack, "wsgi", wsgi.workers, n, console),
            await _side(stack, "asgi", asgi.workers, n, console),
        )

    got = asyncio.run(measure())
    verdict = judge(got)
    console.verdict(verdict)
    return LabResult(prediction, got, verdict)
