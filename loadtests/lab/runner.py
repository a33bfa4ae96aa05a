"""What every lab shares: its description, its knobs and the console it reports on."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from loadtests.lab.model import Knobs, LabResult, Prediction, Verdict
from loadtests.lab.stack import LabStack


class UsageError(Exception):
    """A bad option: one line on stderr, exit code 2."""


@dataclass(frozen=True)
class KnobSpec:
    """One option a lab takes (``N=`` or ``MS=``): its meaning, default and bounds."""

    name: str
    meaning: str
    default: int
    low: int
    high: int

    def value(self, given: int | None) -> int:
        if given is None:
            return self.default
        if not self.low <= given <= self.high:
            raise UsageError(
                f"{self.name.upper()}={given} is out of range: {self.meaning} must be between "
                f"{self.low} and {self.high}"
            )
        return given


@dataclass
class Console:
    """Where a lab reports: what to expect, progress, the verdict. stdout by default."""

    out: TextIO = field(default_factory=lambda: sys.stdout)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def expect(self, prediction: Prediction) -> None:
        self.say(f"Expect: {prediction.summary}")
        for line in prediction.arithmetic:
            self.say(f"  {line}")
        self.say()

    def progress(self, label: str) -> Callable[[int, int, float], None]:
        """A burst's progress: a line per completion, at most about ten per burst."""

        def report(done: int, total: int, elapsed_s: float) -> None:
            step = max(1, math.ceil(total / 10))
            if done % step == 0 or done == total:
                self.say(f"  {label}: {done}/{total} done at {elapsed_s * 1000:.0f} ms")

        return report

    def verdict(self, verdict: Verdict) -> None:
        self.say()
        self.say(f"Verdict ({verdict.lab}): {verdict.outcome.value}")
        for check in verdict.checks:
            self.say(f"  {check.describe()}")
        for note in verdict.notes:
            self.say(f"  note: {note}")


LabRun = Callable[[LabStack, Knobs, Console], LabResult]


@dataclass(frozen=True)
class Lab:
    name: str
    claim: str
    #: The live page's panel and the Grafana dashboard (and panel) to watch while it runs.
    watch: str
    run: LabRun
    knobs: tuple[KnobSpec, ...] = ()

    def knob(self, name: str, knobs: Knobs) -> int:
        spec = next(spec for spec in self.knobs if spec.name == name)
        return spec.value(getattr(knobs, name))

    def check_knobs(self, knobs: Knobs) -> None:
        """UsageError for a knob this lab does not take, or one out of its range."""
        taken = {spec.name: spec for spec in self.knobs}
        for name in ("n", "ms"):
            given = getattr(knobs, name)
            if given is None:
                continue
            if name not in taken:
                accepted = ", ".join(spec.name.upper() for spec in self.knobs) or "no options"
                raise UsageError(f"lab {self.name} takes no {name.upper()} (it takes {accepted})")
            taken[name].value(given)
