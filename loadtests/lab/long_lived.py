"""Lab 5: long-lived connections pin sync workers.

A server-sent-events stream holds a Gunicorn sync worker for its whole life: ``capacity``
streams leave no worker for anything else, so a plain ``/wsgi/hello`` waits until one ends.
On the event loop a stream is a suspended coroutine: ``/asgi/hello`` answers at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from loadtests.lab import client
from loadtests.lab.model import Check, Knobs, LabResult, Prediction, Verdict
from loadtests.lab.runner import Console, KnobSpec
from loadtests.lab.stack import LabStack

MS = KnobSpec("ms", "how long each stream lasts, in ms", default=3000, low=1000, high=10000)
INTERVAL_MS = 500
#: The blocked hello waits at least this share of the streams' remaining time ...
WAIT_LOW = 0.7
#: ... and at most that plus this (a stream's end, then the worker picks the request up).
WAIT_SLACK_S = 1.5
#: The ASGI hello, beside as many streams: under this (it never queues behind them).
FREE_S = 0.5
NOT_MEASURED = (
    "long polling: this stack has no long-polling endpoint yet, so it is not measured",
    "WebSockets: Flask has no WebSocket route here (a sync worker would be pinned the same "
    "way); the ASGI side holds them on its loop (see the loop-stall lab)",
)


@dataclass(frozen=True)
class PinnedMeasurement:
    streams: int
    hold_ms: int
    #: How long each hello took, and how long the streams still had to run when it was sent.
    wsgi_hello_s: float
    wsgi_remaining_s: float
    wsgi_status: int | str
    asgi_hello_s: float
    asgi_status: int | str


def judge(got: PinnedMeasurement) -> Verdict:
    remaining = got.wsgi_remaining_s
    checks = (
        Check(
            "/wsgi/hello wait",
            round(remaining * 1000),
            round(got.wsgi_hello_s * 1000),
            round(WAIT_LOW * remaining * 1000),
            round((remaining + WAIT_SLACK_S) * 1000),
            " ms",
        ),
        Check("/asgi/hello wait", 0, round(got.asgi_hello_s * 1000), 0, FREE_S * 1000, " ms"),
        Check("hello answered 200 (both)", 2, [got.wsgi_status, got.asgi_status].count(200), 2, 2),
    )
    return Verdict.from_checks("long-lived", checks, NOT_MEASURED)


async def _hello_beside_streams(
    stack: LabStack, interface: str, streams: int, hold_ms: int, console: Console
) -> tuple[float, float, int | str]:
    events = hold_ms // INTERVAL_MS + 1
    path = f"/{interface}/stream?events={events}&interval_ms={INTERVAL_MS}"
    console.say(f"Opening {streams} x GET {path} (held {hold_ms} ms each) ...")
    opened = time.monotonic()
    async with client.held_streams(stack.public_url, path, streams) as streaming_since:
        console.say(
            f"  {interface}: {streams} streams flowing after "
            f"{(streaming_since - opened) * 1000:.0f} ms"
        )
        # The streams began no earlier than `opened`; what remains of them is at most this:
        remaining = max(0.0, hold_ms / 1000 - (time.monotonic() - opened))
        status, took = await client.get(
            stack.public_url, f"/{interface}/hello", hold_ms / 1000 + 10
        )
        console.say(f"  {interface}: GET /{interface}/hello -> {status} after {took * 1000:.0f} ms")
    return took, remaining, status


def run(stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    hold_ms = MS.value(knobs.ms)
    wsgi = stack.service("wsgi")
    streams = wsgi.capacity
    prediction = Prediction(
        f"/wsgi/hello waits until a stream ends (about {hold_ms} ms); /asgi/hello answers at once",
        (
            f"WSGI capacity = {wsgi.workers} workers x {wsgi.threads} threads = {streams} "
            f"(from /wsgi/healthz) -> {streams} SSE streams hold every worker",
            f"each stream lasts {hold_ms} ms -> hello waits the streams' remaining time "
            f"(band {WAIT_LOW:g} x remaining .. remaining + {WAIT_SLACK_S:g} s)",
            f"ASGI: the same {streams} streams are suspended coroutines -> hello under "
            f"{FREE_S * 1000:.0f} ms",
            *NOT_MEASURED,
        ),
    )
    console.expect(prediction)

    async def measure() -> PinnedMeasurement:
        w_took, w_remaining, w_status = await _hello_beside_streams(
            stack, "wsgi", streams, hold_ms, console
        )
        a_took, _, a_status = await _hello_beside_streams(stack, "asgi", streams, hold_ms, console)
        return PinnedMeasurement(streams, hold_ms, w_took, w_remaining, w_status, a_took, a_status)

    got = asyncio.run(measure())
    verdict = judge(got)
    console.verdict(verdict)
    return LabResult(prediction, got, verdict)
