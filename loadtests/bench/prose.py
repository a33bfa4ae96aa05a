"""The report's words for each finding (`findings` computes them, this module says them)."""

from __future__ import annotations

from functools import singledispatch

from loadtests.bench import analysis, numbers
from loadtests.bench.findings import (
    BoundReach,
    CountsSummary,
    Finding,
    LoadgenSummary,
    OpenKeepUp,
    PollHolding,
    Queueing,
    Ratios,
    Scaling,
    VersusBound,
    WorkerModels,
)
from loadtests.bench.matrix import REACH_PCT
from loadtests.bench.results import OPEN

rate, ms, pct = numbers.rate, numbers.ms, numbers.pct


def describe_all(found: list[Finding]) -> list[str]:
    return [describe(f) for f in found]


def unit(scenario: str) -> str:
    if scenario == "stream":
        return "streams"
    if scenario == "poll":
        return "polls"
    return "messages" if scenario.startswith("ws_") else "requests"


def level(value: float, model: str) -> str:
    """A step's load as words: '40 users' or '30/s offered'."""
    return f"{rate(value)} offered" if model == OPEN else f"{value:g} users"


def _label(scenario: str, target: str) -> str:
    return f"{scenario}/{target.upper()}"


def capacity(value: int | None) -> str:
    return "unbounded" if value is None else str(value)


@singledispatch
def describe(finding: Finding) -> str:
    raise TypeError(f"no words for {type(finding).__name__}")


@describe.register
def _(f: Scaling) -> str:
    sat, label = f.saturation, _label(f.scenario, f.target)
    load = "offered rate" if f.model == OPEN else "users"
    if not sat.saturated:
        return (
            f"{label}: no saturation up to {level(sat.to_level, f.model)} (last step scaled "
            f"{sat.efficiency:.2f} of linear); peak {rate(sat.peak_rps)} {unit(f.scenario)}."
        )
    where = (
        f"already at the lowest level ({level(sat.from_level, f.model)})"
        if sat.at_first_level
        else f"between {level(sat.from_level, f.model)} and {level(sat.to_level, f.model)}"
    )
    return (
        f"{label}: throughput stops following the {load} {where}: {rate(sat.rps_before)} -> "
        f"{rate(sat.rps_after)} while the {load} went x{sat.to_level / sat.from_level:.1f} "
        f"(marginal scaling {sat.efficiency:.2f}); peak {rate(sat.peak_rps)} "
        f"{unit(f.scenario)} at {level(sat.peak_level, f.model)}."
    )


@describe.register
def _(f: VersusBound) -> str:
    cap = f"capacity {f.capacity}" if f.capacity else "capacity unbounded"
    parts = [
        f"{level(p.level, f.model)} {rate(p.rps)} = {p.pct:.0f} % of {rate(p.bound)}"
        + (" [load-generator bound]" if p.loadgen_bound else "")
        for p in f.points
    ]
    return f"{_label(f.scenario, f.target)} vs Little's law ({cap}): " + "; ".join(parts) + "."


@describe.register
def _(f: Queueing) -> str:
    text = (
        f"{_label(f.scenario, f.target)}: at {f.users} users only {f.capacity} requests run at "
        f"once, so the rest queue: Little's law predicts a mean latency of {ms(f.predicted_ms)} "
        f"(users / bound); measured {ms(f.measured_ms)} (p95 {ms(f.p95_ms)})"
    )
    if not f.steady:
        text += (
            f"; the queue takes longer than the {f.warmup_s:g} s warm-up to build, so this "
            "step is not at steady state and its latency is understated"
        )
    return text + "."


@describe.register
def _(f: Ratios) -> str:
    parts = []
    for p in f.points:
        text = f"{level(p.level, f.model)} x{p.ratio:.2f}"
        if p.asgi_p95_ms is not None and p.wsgi_p95_ms is not None:
            text += f" (p95 {ms(p.asgi_p95_ms)} vs {ms(p.wsgi_p95_ms)})"
        parts.append(text)
    return f"{f.scenario}: ASGI/WSGI throughput ratio " + "; ".join(parts) + "."


@describe.register
def _(f: OpenKeepUp) -> str:
    head = (
        f"{_label(f.scenario, f.target)} open model, {rate(f.offered_rps)} offered: answered "
        f"{rate(f.rps)}"
    )
    trend = (
        f"latency from the scheduled send {ms(f.first_p50_ms)} (p50) at the start of the window, "
        f"{ms(f.last_p50_ms)} at its end, p99 {ms(f.p99_ms)}"
    )
    if f.keeps_up:
        return f"{head}: it keeps up; {trend}."
    return (
        f"{head}: it falls behind, {f.unanswered} of the {f.sent} requests sent in the window "
        f"were still unanswered at its end; {trend}: the backlog, and with it the wait, grows "
        "for as long as the offered rate lasts."
    )


@describe.register
def _(f: LoadgenSummary) -> str:
    if f.bound:
        return (
            f"{len(f.bound)} of {f.total} steps were limited by the load generator or the shared "
            f"host ({', '.join(f.bound)}): their throughput is a lower bound for the server, not "
            "its limit."
        )
    return (
        f"No step was marked load-generator bound (Locust below "
        f"{analysis.LOADGEN_CPU_LIMIT:.0f} % of a core and host below "
        f"{analysis.HOST_CPU_LIMIT:.0f} % CPU)."
    )


@describe.register
def _(f: CountsSummary) -> str:
    if not f.checked:
        return "Client vs server counts: not available (see the cross-check table)."
    return (
        f"Client vs server counts (Prometheus): {f.ok} of {f.checked} runs within tolerance; in "
        f"{f.exact} the servers counted exactly the requests the client started; largest count "
        f"outside [completed, started]: {f.worst_excess:g}."
    )


@describe.register
def _(f: BoundReach) -> str:
    def cells(found) -> str:
        return ", ".join(
            f"{c.target} {c.pct:.0f} %" + (" [load-generator bound]" if c.loadgen_bound else "")
            for c in found
        )

    head = f"{f.scenario} at {level(f.level, f.model)}: "
    variants = "variant" if len(f.reached) == 1 else "variants"
    reached = (
        f"{len(f.reached)} {variants} reached the bound (>= {REACH_PCT:.0f} %): {cells(f.reached)}"
        if f.reached
        else f"no variant reached {REACH_PCT:.0f} % of the bound"
    )
    short = f"; below it: {cells(f.short)}" if f.short else ""
    return head + reached + short + "."


@describe.register
def _(f: WorkerModels) -> str:
    base = f.points[0]
    parts = [
        f"{p.target} ({p.worker_class}, capacity {capacity(p.capacity)}) {rate(p.rps)}, "
        f"p95 {ms(p.p95_ms)}" + (f", x{p.ratio:.1f}" if p is not base and p.ratio else "")
        for p in f.points
    ]
    return (
        f"{f.scenario} at {level(f.level, f.model)}, WSGI worker models "
        f"(ratios to {base.target}): " + "; ".join(parts) + "."
    )


@describe.register
def _(f: PollHolding) -> str:
    parts = [
        f"{p.target} held {numbers.number(p.held_mean)} (max {numbers.number(p.held_max)}) of "
        f"capacity {capacity(p.capacity)}, {rate(p.rps)} polls, "
        f"{pct(None if p.message_share is None else 100 * p.message_share)} with a message, "
        f"delivery p95 {ms(p.delivery_p95_ms)}, publish p95 {ms(p.publish_p95_ms)}"
        for p in f.points
    ]
    if f.over_capacity:
        over = f" {', '.join(f.over_capacity)} held more waiting polls than its capacity."
    else:
        over = " No bounded variant held more waiting polls than its capacity"
        outnumbered = [p.target for p in f.points if p.capacity and p.capacity < f.pollers]
        if outnumbered:
            over += f"; where the pollers outnumbered it ({', '.join(outnumbered)}) the rest queued"
        over += "."
    return (
        f"poll at {f.pollers} pollers, polls waiting when each message was published: "
        + "; ".join(parts)
        + "."
        + over
    )
