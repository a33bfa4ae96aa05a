"""What a run shows, computed from its numbers: typed findings, no words.

The report (`prose`) turns each finding into a sentence; nothing here is canned, every field is
read off the steps and blocks of the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.bench import analysis, matrix
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


@dataclass(frozen=True)
class BoundCell:
    target: str
    pct: float
    loadgen_bound: bool


@dataclass(frozen=True)
class BoundReach:
    """At a scenario's highest load, the variants that reached its bound and those short of it."""

    scenario: str
    level: float
    model: str
    reached: tuple[BoundCell, ...]
    short: tuple[BoundCell, ...]


@dataclass(frozen=True)
class ModelPoint:
    target: str
    worker_class: str
    capacity: int | None
    rps: float
    p95_ms: float | None
    #: Throughput against the first point's (the smallest capacity).
    ratio: float | None


@dataclass(frozen=True)
class WorkerModels:
    """One scenario on the WSGI variants at the same load, smallest capacity first: what each
    worker model (sync, gthread, gevent, ...) does with requests that wait."""

    scenario: str
    level: float
    model: str
    points: tuple[ModelPoint, ...]


@dataclass(frozen=True)
class PollPoint:
    target: str
    capacity: int | None
    held_mean: float | None
    held_max: int | None
    rps: float
    message_share: float | None
    delivery_p95_ms: float | None
    #: How long the publisher's POST took: it needs a slot too.
    publish_p95_ms: float | None


@dataclass(frozen=True)
class PollHolding:
    """Long polling at the most pollers: the polls each message found waiting, per variant."""

    pollers: int
    points: tuple[PollPoint, ...]

    @property
    def over_capacity(self) -> tuple[str, ...]:
        """Bounded variants that held more waiting polls than their capacity (expected: none)."""
        return tuple(
            p.target
            for p in self.points
            if p.capacity is not None and p.held_max is not None and p.held_max > p.capacity
        )


Finding = (
    Scaling
    | VersusBound
    | Queueing
    | Ratios
    | OpenKeepUp
    | BoundReach
    | WorkerModels
    | PollHolding
    | LoadgenSummary
    | CountsSummary
)


def findings(run: Run) -> list[Finding]:
    steps = [s for s in run.steps if s.rps is not None]
    out: list[Finding] = []
    if matrix.is_matrix(run):
        out.extend(_matrix_findings(run))
    else:
        for scenario in dict.fromkeys(s.scenario for s in steps):
            for target in matrix.targets(run):
                out.extend(_per_target(run, _by(steps, scenario, target)))
            ratios = _ratios(steps, scenario)
            if ratios is not None:
                out.append(ratios)
    holding = _poll_holding(run)
    if holding is not None:
        out.append(holding)
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
    if scenario in ("io", "stream", "poll") and bound_rows:
        capacity = run.meta.capacity.get(target)
        points = tuple(
            BoundPoint(r.level, r.rps or 0.0, r.ideal_rps or 0.0,
                       analysis.percent_of(r.rps or 0.0, r.ideal_rps) or 0.0, r.loadgen_bound)
            for r in bound_rows
        )  # fmt: skip
        out.append(VersusBound(scenario, target, model, capacity, points))
        queueing = _queueing(run, bound_rows[-1], capacity) if scenario != "poll" else None
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


# ------------------------------------------------------------------ the matrix


def _matrix_findings(run: Run) -> list[Finding]:
    out: list[Finding] = []
    for scenario in dict.fromkeys(s.scenario for s in run.steps):
        reach = _bound_reach(run, scenario)
        if reach is not None:
            out.append(reach)
        models = _worker_models(run, scenario) if scenario == "io" else None
        if models is not None:
            out.append(models)
    return out


def _bound_reach(run: Run, scenario: str) -> BoundReach | None:
    top = [s for s in matrix.top_steps(run, scenario) if s.pct_of_ideal is not None]
    if not top:
        return None
    cells = [BoundCell(s.target, s.pct_of_ideal or 0.0, s.loadgen_bound) for s in top]
    return BoundReach(
        scenario,
        max(s.level for s in top),
        top[0].model,
        tuple(c for c in cells if c.pct >= matrix.REACH_PCT),
        tuple(c for c in cells if c.pct < matrix.REACH_PCT),
    )


def _capacity_order(step: Step) -> float:
    return float("inf") if step.capacity is None else step.capacity


def _worker_models(run: Run, scenario: str) -> WorkerModels | None:
    wsgi = [
        s
        for s in matrix.top_steps(run, scenario)
        if matrix.target_info(run, s.target).get("interface") == "wsgi" and s.rps
    ]
    level = max((s.level for s in wsgi), default=0)
    same = sorted((s for s in wsgi if s.level == level), key=_capacity_order)
    if len(same) < 2:
        return None
    base = same[0].rps
    points = tuple(
        ModelPoint(
            s.target,
            str(matrix.target_info(run, s.target).get("worker_class", "?")),
            s.capacity,
            s.rps or 0.0,
            s.p95_ms,
            analysis.ratio(s.rps, base),
        )
        for s in same
    )
    return WorkerModels(scenario, level, same[0].model, points)


def _poll_holding(run: Run) -> PollHolding | None:
    top = [s for s in matrix.top_steps(run, "poll") if s.poll is not None]
    if not top:
        return None
    pollers = max(s.users or 0 for s in top)
    points = tuple(
        PollPoint(
            s.target,
            s.capacity,
            s.poll.held_mean,
            s.poll.held_max,
            s.rps or 0.0,
            s.poll.message_share,
            s.poll.delivery_p95_ms,
            (s.entries.get("POST /poll [publish]") or {}).get("p95_ms"),
        )
        for s in top
        if s.poll is not None and s.users == pollers
    )
    return PollHolding(pollers, points)
