"""The run as a matrix, variants x scenarios: which step fills which cell (pure, no words).

A column is one scenario at one load (users, or an offered rate); a row is one target. The
report's tables, the matrix findings and the matrix plots all read the run through here.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.bench.results import OPEN, Run, Step

#: A cell reaches its bound from this share of it on (shared cores and short windows keep
#: measured rates a few percent under an exact bound).
REACH_PCT = 80.0
#: The bound each scenario is measured against, said once for the report, the docs and the
#: findings (hello and cpu have none: a CPU race has no Little's-law bound).
BOUNDS = {
    "io": "min(users, capacity) / wait: Little's law with the /io wait as service time",
    "stream": "min(users, capacity) / stream length: a stream holds its slot to the end",
    "poll": (
        "min(pollers, capacity) / min(message interval, timeout): every waiting poll ends when "
        "the next message comes, so each slot completes one poll per message"
    ),
    "ws_echo": "the offered rate, users x messages/s (each user sends on a fixed schedule)",
}


@dataclass(frozen=True)
class Column:
    scenario: str
    level: float
    open_model: bool = False

    @property
    def label(self) -> str:
        unit = "/s" if self.open_model else "u"
        return f"{self.scenario} @{self.level:g}{unit}"


def is_matrix(run: Run) -> bool:
    """A run over more than the two default services (or the matrix profile): shown as one."""
    return run.meta.options.get("profile") == "matrix" or len(targets(run)) > 2


def targets(run: Run) -> list[str]:
    """The run's targets in its order (the options', else the steps')."""
    named = run.meta.options.get("targets") or []
    return list(dict.fromkeys([*named, *(s.target for s in run.steps)]))


def columns(run: Run) -> list[Column]:
    """Each scenario's loads, in the run's scenario order; a scenario no target could run
    keeps the columns of its planned loads (its cells say why)."""
    out = []
    for scenario in _scenario_order(run):
        mine = [s for s in run.steps if s.scenario == scenario]
        open_model = any(s.is_open for s in mine) or run.meta.model == OPEN
        levels = {s.level for s in mine} or set(_planned(run, scenario, open_model))
        out.extend(Column(scenario, level, open_model) for level in sorted(levels))
    return out


def _planned(run: Run, scenario: str, open_model: bool) -> list[float]:
    return run.meta.options.get("rates" if open_model else "users", {}).get(scenario, [])


def _scenario_order(run: Run) -> list[str]:
    named = run.meta.options.get("scenarios") or []
    return list(dict.fromkeys([*named, *(s.scenario for s in run.steps)]))


def step_at(run: Run, target: str, column: Column) -> Step | None:
    for step in run.steps:
        if (step.target, step.scenario, step.level) == (target, column.scenario, column.level):
            return step
    return None


def not_applicable(run: Run, target: str, scenario: str) -> str | None:
    """Why a cell was not run, or None."""
    for na in run.not_applicable:
        if (na.target, na.scenario) == (target, scenario):
            return na.reason
    return None


def top_steps(run: Run, scenario: str) -> list[Step]:
    """Each target's step at the scenario's highest load, in target order."""
    out = []
    for target in targets(run):
        rows = [s for s in run.steps if (s.target, s.scenario) == (target, scenario)]
        if rows:
            out.append(max(rows, key=lambda s: s.level))
    return out


def target_info(run: Run, target: str) -> dict:
    """The target's /variants.json entry as the run recorded it ({} for an older run)."""
    return run.meta.targets.get(target, {})
