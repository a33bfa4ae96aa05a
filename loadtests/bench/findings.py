"""What a run shows, computed from its numbers: typed findings, no words.

The report (`prose`) turns each finding into a sentence; nothing here is canned, every field is
read off the steps and blocks of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.bench import analysis
from loadtests.bench.analysis import Saturation
from loadtests.bench.results import Block, Run, Step

#: An open-model step keeps up when it answers at least this share of the offered rate and
#: leaves at most this share of its window's sends unanswered at the end.
KEEPS_UP_SHARE = 0.9
UNANSWERED_SHARE = 0.1


@dataclass(frozen=True)
class Scaling:
    """How throughput followed the load (users, or the offered rate) for one scenario/target."""

    scenario: str
    target: str
    model: str
    saturation: Saturation


@dataclass(frozen=True)
class BoundPoint:
    level: float
    rps: float
    bound: float
    pct: float
    loadgen_bound: bool


@dataclass(frozen=True)
class VersusBound:
    """Measured throughput against the Little's-law bound (io, stream), step by step."""

    scenario: str
    target: str
    model: str
    capacity: int | None
    points: tuple[BoundPoint, ...]


@dataclass(frozen=True)
class Queueing:
    """More closed-loop users than the server runs at once: the rest queue (Little's law)."""

    scenario: str
    target: str
    users: int
    capacity: int
    predicted_ms: float
    measured_ms: float
    p95_ms: float | None
    warmup_s: float | None

    @property
    def steady(self) -> bool:
        """False when the queue takes longer than the warm-up to build."""
        return self.warmup_s is None or self.predicted_ms / 1000 <= self.warmup_s


@dataclass(frozen=True)
class RatioPoint:
    level: float
    ratio: float
    asgi_p95_ms: float | None
    wsgi_p95_ms: float | None


@dataclass(frozen=True)
class Ratios:
    """ASGI/WSGI throughput at the same load."""

    scenario: str
    model: str
    points: tuple[RatioPoint, ...]


@dataclass(frozen=True)
class OpenKeepUp:
    """An open-model step: did the server answer at the offered rate, or fall behind?"""

    scenario: str
    target: str
    offered_rps: float
    rps: float
    sent: int
    unanswered: int
    first_p50_ms: float | None
    last_p50_ms: float | None
    p99_ms: float | None

    @property
    def keeps_up(self) -> bool:
        return (
            self.rps >= KEEPS_UP_SHARE * self.offered_rps
            and self.unanswered <= UNANSWERED_SHARE * max(self.sent, 1)
        )


@dataclass(frozen=True)
class LoadgenSummary:
    """Steps limited by the load generator or the shared host (``bound`` empty: none)."""

    bound: tuple[str, ...]
    total: int


@dataclass(frozen=True)
class CountsSummary:
    """Client against server counts over the blocks (``checked`` 0: none could be checked)."""

    blocks: int
    checked: int
    ok: int
    exact: int
    worst_excess: float


Finding = Scaling | VersusBound | Queueing | Ratios | OpenKeepUp | LoadgenSummary | CountsSummary


def findings(run: Run) -> list[Finding]:
    steps = [s for s in run.steps if s.rps is not None]
    out: list[Finding] = []
    for scenario in dict.fromkeys(s.scenario for s in steps):
        for target in ("wsgi", "asgi"):
            out.extend(_per_target(run, _by(steps, scenario, target)))
        ratios = _ratios(steps, scenario)
        if ratios is not None:
            out.append(ratios)
    out.append(LoadgenSummary(tuple(_name(s) for s in steps if s.loadgen_bound), total=len(steps)))
    counts = _counts(run.blocks)
    if counts is not None:
        out.append(counts)
    return out


def _by(steps: list[Step], scenario: str, target: str) -> list[Step]:
    return sorted((s for s in steps if (s.scenario, s.target) == (scenario, target)), key=_level)


def _level(step: Step) -> float:
    return step.level


def _name(step: Step) -> str:
    unit = "/s" if step.is_open else ""
    return f"{step.scenario}/{step.target}@{step.level:g}{unit}"


def _per_target(run: Run, rows: list[Step]) -> list[Finding]:
    if not rows:
        return []
    out: list[Finding] = []
    scenario, target, model = rows[0].scenario, rows[0].target, rows[0].model
    sat = analysis.saturation((r.level, r.rps or 0.0) for r in rows)
    if sat is not None:
        out.append(Scaling(scenario, target, model, sat))
    bound_rows = [r for r in rows if r.ideal_rps]
    if scenario in ("io", "stream") and bound_rows:
        capacity = run.meta.capacity.get(target)
        points = tuple(
            BoundPoint(r.level, r.rps or 0.0, r.ideal_rps or 0.0,
                       analysis.percent_of(r.rps or 0.0, r.ideal_rps) or 0.0, r.loadgen_bound)
            for r in bound_rows
        )  # fmt: skip
        out.append(VersusBound(scenario, target, model, capacity, points))
        queueing = _queueing(run, bound_rows[-1], capacity)
        if queueing is not None:
            out.append(queueing)
    out.extend(_keep_up(r) for r in rows if r.is_open)
    return out


def _queueing(run: Run, top: Step, capacity: int | None) -> Queueing | None:
    if top.is_open or not capacity or top.users is None or top.users <= capacity:
        return None
    if not top.avg_ms or not top.ideal_rps:
        return None
    service_s = min(top.users, capacity) / top.ideal_rps
    predicted = analysis.littles_law_latency(top.users, service_s, capacity) * 1000
    return Queueing(
        top.scenario,
        top.target,
        top.users,
        capacity,
        predicted,
        top.avg_ms,
        top.p95_ms,
        run.meta.warmup_s,
    )


def _keep_up(step: Step) -> OpenKeepUp:
    answered = [b for b in step.timeline or [] if b.p50_ms is not None]
    return OpenKeepUp(
        step.scenario,
        step.target,
        step.offered_rps or 0.0,
        step.rps or 0.0,
        step.sent or 0,
        step.unanswered or 0,
        answered[0].p50_ms if answered else None,
        answered[-1].p50_ms if answered else None,
        step.p99_ms,
    )


def _ratios(steps: list[Step], scenario: str) -> Ratios | None:
    wsgi = {s.level: s for s in _by(steps, scenario, "wsgi")}
    points = []
    for a in _by(steps, scenario, "asgi"):
        w = wsgi.get(a.level)
        ratio = analysis.ratio(a.rps, w.rps) if w else None
        if w is not None and ratio is not None:
            points.append(RatioPoint(a.level, ratio, a.p95_ms, w.p95_ms))
    if not points:
        return None
    return Ratios(scenario, steps[0].model, tuple(points))


def _counts(blocks: list[Block]) -> CountsSummary | None:
    checks = [b.crosscheck for b in blocks if b.crosscheck is not None]
    if not checks:
        return None
    done = [c for c in checks if c.ok is not None]
    return CountsSummary(
        blocks=len(checks),
        checked=len(done),
        ok=sum(1 for c in done if c.ok),
        exact=sum(1 for c in done if c.server == c.client_started),
        worst_excess=max((c.excess for c in done), default=0),
    )
