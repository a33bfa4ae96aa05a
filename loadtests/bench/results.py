"""Typed bench results: a step (one user level), a block (one scenario on one target) and a run.

The driver and the cross-check fill these; `Run.to_dict()` is results.json (schema 1, the
keys the report and the tests read). Optional figures that do not apply to a step (time to the
first event outside `stream`, the offered rate outside `ws_echo`) are left out of the JSON, as
before, rather than written as null.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = 1


@dataclass
class Step:
    """One user level of a block: Locust's figures over the measurement window, and verdicts."""

    scenario: str
    target: str
    users: int
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
    # Filled by the cross-check with Prometheus (None: no usable scrapes in the window).
    crosschecked: bool = False
    server_rps: float | None = None
    server_rps_diff_pct: float | None = None

    _OPTIONAL = ("ttfe_p50_ms", "ttfe_p95_ms", "ttfe_p99_ms", "offered_rps")
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
    crosscheck: dict[str, Any] | None = None
    crosscheck_reason: str | None = None
    crosscheck_window: dict[str, Any] | None = None
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
                out[name] = value
        return out


@dataclass
class Run:
    """A whole bench run: what results.json holds."""

    complete: bool
    meta: dict[str, Any]
    blocks: list[Block]
    not_applicable: list[dict[str, str]]
    findings: list[str] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return [step for block in self.blocks for step in block.steps]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "complete": self.complete,
            "meta": self.meta,
            "steps": [step.to_dict() for step in self.steps],
            "blocks": [block.to_dict() for block in self.blocks],
            "not_applicable": self.not_applicable,
            "findings": self.findings,
        }
