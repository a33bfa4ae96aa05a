"""What a lab predicts, measures and concludes: plain typed records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    HELD = "prediction held"
    NOT_HELD = "prediction did not hold"
    SKIPPED = "skipped: not available"


@dataclass(frozen=True)
class Check:
    """One predicted number against its measurement, with the band that counts as a match."""

    name: str
    predicted: float
    measured: float
    low: float
    high: float
    unit: str = ""

    @property
    def held(self) -> bool:
        return self.low <= self.measured <= self.high

    def describe(self) -> str:
        mark = "ok  " if self.held else "MISS"
        return (
            f"{mark} {self.name}: predicted {_num(self.predicted)}{self.unit}, "
            f"measured {_num(self.measured)}{self.unit} "
            f"(band {_num(self.low)}..{_num(self.high)}{self.unit})"
        )


@dataclass(frozen=True)
class Prediction:
    """What to expect, in words and arithmetic, printed before anything is sent."""

    summary: str
    arithmetic: tuple[str, ...]


@dataclass(frozen=True)
class Verdict:
    lab: str
    outcome: Outcome
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = ()

    @classmethod
    def from_checks(
        cls, lab: str, checks: tuple[Check, ...], notes: tuple[str, ...] = ()
    ) -> Verdict:
        held = bool(checks) and all(check.held for check in checks)
        return cls(lab, Outcome.HELD if held else Outcome.NOT_HELD, checks, notes)

    @property
    def held(self) -> bool:
        return self.outcome is Outcome.HELD


@dataclass(frozen=True)
class LabResult:
    """A finished lab: its prediction, its lab-specific measurement and the verdict."""

    prediction: Prediction
    measurement: object
    verdict: Verdict


@dataclass(frozen=True)
class Knobs:
    """The options a user may turn (``make lab NAME=... N=... MS=...``); None: the lab's default."""

    n: int | None = None
    ms: int | None = None


def _num(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.0f}"
