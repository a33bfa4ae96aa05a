"""Reliability tests: real load through the real native stack, with figures.

Destructive tests (reload, kill, stop) run against their own stack, profile `chaos` (ports
28080, 28001, 28002, 29090, ...; state in .run/chaos), so they never disturb the `stack` the
other tests share. Each test leaves the chaos stack up and healthy for the next one.

Every test records its figures with `harness.report(...)`; they are printed at the end of the
run under "reliability figures" (and in the test's own output with `pytest -s`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stackctl.settings import load_settings
from tests.conftest import StackHandle
from tests.reliability.harness import CHAOS_PROFILE, FIGURES, chaos_env, chaosctl, ensure_up


@pytest.fixture(scope="session")
def chaos_stack() -> Iterator[StackHandle]:
    settings = load_settings(CHAOS_PROFILE, chaos_env())
    chaosctl("down", timeout=120)  # a stack left over by an interrupted run
    ensure_up()
    try:
        yield StackHandle(settings)
    finally:
        stopped = chaosctl("down", timeout=120)
        assert stopped.returncode == 0, f"chaos down failed:\n{stopped.stdout}\n{stopped.stderr}"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for title, lines in FIGURES:
        terminalreporter.write_line(title)
        for line in lines:
            terminalreporter.write_line(f"    {line}")
