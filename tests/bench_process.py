"""`python -m loadtests.bench` as `make bench` runs it, for the integration tests.

A subprocess, not an import: Locust monkey-patches the standard library (gevent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackctl.addresses import stack_env
from stackctl.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_COMMAND = [sys.executable, "-m", "loadtests.bench"]


@dataclass(frozen=True)
class BenchRun:
    results: dict[str, Any]  # the run's results.json
    run_dir: Path
    stdout: str


def bench_env(*, test_stack: bool = True, **extra: str) -> dict[str, str]:
    """The environment without BENCH_* options (flags decide), plus, with `test_stack`, the test
    stack's addresses as `python -m stackctl env` prints them after `make up`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BENCH_")}
    if test_stack:
        env |= stack_env(load_settings("test"), "native")
    return env | {"PYTHONUNBUFFERED": "1"} | extra


def finished_run(out: Path, returncode: int | None, stdout: str, stderr: str) -> BenchRun:
    """The newest run under `out`, once the bench exited 0 (the test fails otherwise)."""
    assert returncode == 0, f"bench failed:\n{stdout[-4000:]}\n{stderr[-4000:]}"
    run_dir = (out / "latest").resolve()
    return BenchRun(json.loads((run_dir / "results.json").read_text()), run_dir, stdout)


def run_bench(argv: list[str], out: Path, env: dict[str, str], timeout_s: float) -> BenchRun:
    """Run the bench with `argv` into `out` and return its run."""
    proc = subprocess.run(
        [*BENCH_COMMAND, *argv, "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )
    return finished_run(out, proc.returncode, proc.stdout, proc.stderr)
