"""Typed bench results: a step (one user level), a block (one scenario on one target) and a run.

The driver and the cross-check fill these; the report reads them; `Run.to_dict()` is
results.json. Optional figures that do not apply to a step (time to the first event outside
`stream`, the offered rate of a closed-loop step outside `ws_echo`, the open model's schedule
figures) are left out of the JSON rather than written as null.

Schema 2 (from 1): every step carries ``model`` ("closed" or "open"); open-model steps carry
``offered_rps``, ``sent``, ``unanswered`` and ``timeline`` and have ``users`` null.
Schema 3 (from 2): targets are server variants; ``meta.targets`` describes each (its
/variants.json entry under the name the run gives it); poll steps carry ``poll``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from loadtests.bench.analysis import CrossCheck
from loadtests.settings import ScenarioSettings

SCHEMA = 3

CLOSED = "closed"
OPEN = "open"
MODELS = (CLOSED, OPEN)


@dataclass(frozen=True)
class TimelineBin:
    """One slice of an open-model step's window, by answer time: latency from the scheduled send."""

    t_s: float
    answered: int
    p50_ms: float | None
    max_ms: float | None


@dataclass(frozen=True)
class PollFigures:
    """A poll step's window: the messages published, how the polls ended, who got each message."""

    published: int
    #: Polls answered in the window: with a message (200) or at their timeout (204).
    answered: int
    with_message: int
    timed_out: int
    #: From a message's sending to its receipt by a poller.
    delivery_p50_ms: float | None
    delivery_p95_ms: float | None
    #: Pollers that received each message published in the window, on average and at most:
    #: the polls waiting on the server when it was published. A server that holds a worker per
    #: waiting poll has at most its capacity of them; the other pollers are queued.
    held_mean: float | None
    held_max: int | None

    @property
    def message_share(self) -> float | None:
        return self.with_message / self.answered if self.answered else None


@dataclass
class Step:
    """One user level of a block: Locust's figures over the measurement window, and verdicts."""

    scenario: str
    target: str
    #: Closed model: the users (each waits for its answer). Open model: None (a schedule).
    users: int | None
    running_users: int
    t_start: float
    t_measure_start: float
    t_measure_end: float
    measure_s: float
    primary: str
    requests: int
    failures: int
    fail_pct: float | None
    rps: float | None
    avg_ms: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    capacity: int | None
    ideal_rps: float | None
    pct_of_ideal: float | None
    gap_pct: float | None
    in_flight: float | None
    loadgen: dict[str, Any]
    loadgen_bound: bool
    loadgen_reasons: list[str]
    entries: dict[str, dict[str, Any]]
    errors: list[dict[str, Any]]
    csv: dict[str, str]
    # Only where they apply (left out of the JSON otherwise).
    ttfe_p50_ms: float | None = None
    ttfe_p95_ms: float | None = None
    ttfe_p99_ms: float | None = None
    offered_rps: float | None = None
    model: str = CLOSED
    #: Open model: requests whose scheduled send fell in the window, those of them not answered
    #: by its end, and the window's latency over time.
    sent: int | None = None
    unanswered: int | None = None
    timeline: list[TimelineBin] | None = None
    poll: PollFigures | None = None
    # Filled by the cross-check with Prometheus (None: no usable scrapes in the window).
    crosschecked: bool = False
    server_rps: float | None = None
    server_rps_diff_pct: float | None = None

    _OPTIONAL = (
        "ttfe_p50_ms",
        "ttfe_p95_ms",
        "ttfe_p99_ms",
        "offered_rps",
        "sent",
        "unanswered",
        "timeline",
        "poll",
    )
    _SERVER = ("server_rps", "server_rps_diff_pct")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["crosschecked"]
        for name in self._OPTIONAL:
            if out[name] is None:
                del out[name]
        if not self.crosschecked:
            for name in self._SERVER:
                del out[name]
        return out

    @property
    def is_open(self) -> bool:
        return self.model == OPEN

    @property
    def level(self) -> float:
        """What the step varies: users (closed model) or the offered rate (open model)."""
        return (self.offered_rps or 0.0) if self.is_open else float(self.users or 0)


@dataclass(frozen=True)
class ClientCounts:
    """What the Locust users counted over a whole block (see scenarios.COUNTS)."""

    started: int
    completed: int
    gateway_error: int


@dataclass
class Block:
    """One scenario on one target: its steps run back to back, then the target rests."""

    scenario: str
    target: str
    service: str
    route: str
    t0: float
    t1: float = 0.0
    client: ClientCounts = field(default_factory=lambda: ClientCounts(0, 0, 0))
    steps: list[Step] = field(default_factory=list)
    # Cross-check with the server's own counters (None until done, or without Prometheus).
    crosscheck: CrossCheck | None = None
    crosscheck_reason: str | None = None
    crosscheck_window: dict[str, float | None] | None = None
    server_route: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "target": self.target,
            "service": self.service,
            "route": self.route,
            "t0": self.t0,
            "t1": self.t1,
            "client": asdict(self.client),
        }
        for name in ("server_route", "crosscheck", "crosscheck_reason", "crosscheck_window"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict() if isinstance(value, CrossCheck) else value
        return out


@dataclass(frozen=True)
class NotApplicable:
    scenario: str
    target: str
    reason: str


@dataclass
class Meta:
    """What the run was: options as given, the services, the host, the versions."""

    started_at: str
    #: The options as the run used them (echoed verbatim into results.json).
    options: dict[str, Any]
    scenario_settings: ScenarioSettings
    services: dict[str, dict[str, Any]]
    capacity: dict[str, int | None]
    cpu_count: int | None
    load_generator: str
    versions: dict[str, str | None]
    scrape_interval_s: float | None
    planned_s: float
    run_dir: str
    elapsed_s: float | None = None
    #: Each target's /variants.json entry, by the name the run gives it.
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.options.get("model", CLOSED)

    @property
    def warmup_s(self) -> float | None:
        return self.options.get("warmup_s")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        settings = self.scenario_settings.as_dict()
        settings.pop("target")
        settings.pop("path_prefix")  # each target's own: meta.targets
        out["scenario_settings"] = settings
        return out


@dataclass
class Run:
    """A whole bench run: what results.json holds."""

    complete: bool
    meta: Meta
    blocks: list[Block]
    not_applicable: list[NotApplicable]
    findings: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return [step for block in self.blocks for step in block.steps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "complete": self.complete,
            "meta": self.meta.to_dict(),
            "steps": [step.to_dict() for step in self.steps],
            "blocks": [block.to_dict() for block in self.blocks],
            "not_applicable": [asdict(na) for na in self.not_applicable],
            "findings": self.findings,
        }
