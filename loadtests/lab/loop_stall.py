"""Lab 4: a blocking call inside async code stalls everything on that event loop.

``/asgi/io/blocking`` calls time.sleep inside ``async def``: its worker's loop runs nothing else
until it returns, so WebSocket pings served by that loop wait about the whole block. The same
sleep in a plain ``def`` (``/asgi/io/threadpool``) runs in the threadpool and the loop keeps
answering. The threadpool's limit is AnyIO's default of 40 threads per worker: beyond 40
concurrent threadpool calls, the next ones queue (the loop itself still answers).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loadtests.lab import client
from loadtests.lab.model import Check, Knobs, LabResult, Prediction, Verdict
from loadtests.lab.runner import Console, KnobSpec
from loadtests.lab.stack import LabStack

MS = KnobSpec("ms", "the blocking call's duration in ms", default=500, low=200, high=3000)
PING_INTERVAL_S = 0.02
#: Rounds of one blocking call through nginx, until one of the ping sockets shares the blocked
#: loop (sockets and calls land on loops as the workers accept them, and nginx reuses its
#: connections, so they may keep missing each other).
MAX_ROUNDS = 3
#: Then, natively, one call per loop straight at Uvicorn, this far apart: a blocked loop
#: accepts no connection, so each next call lands on a loop not yet blocked, and every loop
#: (with every ping socket) stalls.
EVERY_LOOP_STAGGER_S = 0.05
#: A ping on the blocked loop waits at least this share of the block (it may start mid-block).
SPIKE_LOW = 0.6
#: ... and at most the block plus this (scheduling on a busy machine).
SPIKE_SLACK_S = 0.3
#: No spike: every ping under this share of the block, and never under this floor.
CALM_SHARE, CALM_FLOOR_S = 0.2, 0.1


@dataclass(frozen=True)
class StallMeasurement:
    block_ms: int
    sockets: int
    rounds: int
    #: Each socket's slowest ping while the call ran (s), blocking call then threadpool call.
    blocking_worst_s: tuple[float, ...]
    threadpool_worst_s: tuple[float, ...]
    baseline_worst_s: float
    #: Whether the last round blocked every loop at once (straight at Uvicorn).
    every_loop: bool = False

    @property
    def stalled_sockets(self) -> int:
        return sum(
            1 for worst in self.blocking_worst_s if worst >= SPIKE_LOW * self.block_ms / 1000
        )


def calm_bound_s(block_ms: int) -> float:
    return max(CALM_FLOOR_S, CALM_SHARE * block_ms / 1000)


def judge(got: StallMeasurement) -> Verdict:
    block_s = got.block_ms / 1000
    spike = max(got.blocking_worst_s)
    calm = max(got.threadpool_worst_s)
    checks = (
        Check(
            "worst ping during /io/blocking",
            got.block_ms,
            round(spike * 1000),
            round(SPIKE_LOW * got.block_ms),
            round((block_s + SPIKE_SLACK_S) * 1000),
            " ms",
        ),
        Check(
            "worst ping during /io/threadpool",
            round(got.baseline_worst_s * 1000),
            round(calm * 1000),
            0,
            round(calm_bound_s(got.block_ms) * 1000),
            " ms",
        ),
    )
    notes = (
        f"{got.stalled_sockets} of {got.sockets} ping sockets shared the blocked loop and "
        "stalled; the others are served by other workers' loops "
        f"(their worst: {_others_ms(got):.0f} ms); rounds: {got.rounds}"
        + ("; the last blocked every loop, one call each at Uvicorn" if got.every_loop else ""),
        f"pings before any call: worst {got.baseline_worst_s * 1000:.0f} ms",
    )
    return Verdict.from_checks("loop-stall", checks, notes)


def _others_ms(got: StallMeasurement) -> float:
    limit = SPIKE_LOW * got.block_ms / 1000
    return max((w for w in got.blocking_worst_s if w < limit), default=0.0) * 1000


async def _call_while_pinging(
    stack: LabStack, pingers: list[client.Pinger], path: str, console: Console
) -> tuple[float, ...]:
    started = time.monotonic()
    status, took = await client.get(stack.public_url, path, client.REQUEST_TIMEOUT_S)
    console.say(f"  GET {path} -> {status} in {took * 1000:.0f} ms")
    await asyncio.sleep(0.1)  # the last stalled pings come back
    return tuple(p.worst_s(started, started + took) for p in pingers)


async def _block_every_loop(
    direct_url: str, pingers: list[client.Pinger], loops: int, block_ms: int, console: Console
) -> tuple[float, ...]:
    path = f"/io/blocking?ms={block_ms}"
    console.say(f"  {loops} x GET {direct_url}{path}, {EVERY_LOOP_STAGGER_S * 1000:.0f} ms apart")
    started = time.monotonic()

    async def one(index: int) -> None:
        await asyncio.sleep(index * EVERY_LOOP_STAGGER_S)
        await client.get(direct_url, path, client.REQUEST_TIMEOUT_S)

    await asyncio.gather(*(one(i) for i in range(loops)))
    took = time.monotonic() - started
    await asyncio.sleep(0.1)  # the last stalled pings come back
    return tuple(p.worst_s(started, started + took) for p in pingers)


async def _measure(
    stack: LabStack, block_ms: int, loops: int, console: Console
) -> StallMeasurement:
    sockets = 2 * loops
    blocking: tuple[float, ...] = ()
    every_loop = False
    async with client.ping_sockets(stack.ws_url, sockets, PING_INTERVAL_S) as pingers:
        console.say(
            f"  {sockets} WebSockets ping /asgi/ws/echo every {PING_INTERVAL_S * 1000:.0f} ms"
        )
        await asyncio.sleep(0.5)
        now = time.monotonic()
        baseline = max(p.worst_s(now - 0.5, now) for p in pingers)
        rounds = 0
        while rounds < MAX_ROUNDS:
            rounds += 1
            blocking = await _call_while_pinging(
                stack, pingers, f"/asgi/io/blocking?ms={block_ms}", console
            )
            if max(blocking) >= SPIKE_LOW * block_ms / 1000:
                break
            console.say("  no ping socket shared that loop")
        else:
            if stack.asgi_direct_url is not None:
                rounds += 1
                blocking = await _block_every_loop(
                    stack.asgi_direct_url, pingers, loops, block_ms, console
                )
                every_loop = True
        await asyncio.sleep(0.2)
        threadpool = await _call_while_pinging(
            stack, pingers, f"/asgi/io/threadpool?ms={block_ms}", console
        )
    return StallMeasurement(block_ms, sockets, rounds, blocking, threadpool, baseline, every_loop)


def run(stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    block_ms = MS.value(knobs.ms)
    asgi = stack.service("asgi")
    sockets = 2 * asgi.workers
    prediction = Prediction(
        f"pings on the blocked loop wait about {block_ms} ms; with the threadpool, no spike",
        (
            f"{asgi.workers} event loops (from /asgi/healthz); {sockets} ping sockets, "
            "spread over them as the workers accept",
            f"/asgi/io/blocking?ms={block_ms}: time.sleep in async def -> its loop answers "
            f"nothing for {block_ms} ms -> a ping there waits up to {block_ms} ms "
            f"(band {SPIKE_LOW:g} x block .. block + {SPIKE_SLACK_S * 1000:.0f} ms)",
            f"/asgi/io/threadpool?ms={block_ms}: the sleep runs in a worker thread -> pings stay "
            f"under {calm_bound_s(block_ms) * 1000:.0f} ms (limit: 40 threads per worker, "
            "AnyIO's default; this lab uses one)",
        ),
    )
    console.expect(prediction)
    got = asyncio.run(_measure(stack, block_ms, asgi.workers, console))
    verdict = judge(got)
    console.verdict(verdict)
    return LabResult(prediction, got, verdict)
