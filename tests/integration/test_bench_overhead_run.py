"""`python -m loadtests.bench.overhead` for real: both services and their bare apps started by
the bench on free loopback ports, loaded with wrk, stopped again. Asserts what it produces, never
how fast anything is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_overhead_mode_measures_both_services_and_writes_ratios(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "loadtests.bench.overhead", "--rounds", "2", "--duration", "1"]
        + ["--warmup", "0", "--connections", "4", "--out", str(reports)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    (written,) = reports.glob("*-overhead/overhead.json")
    document = json.loads(written.read_text())
    assert [s["service"] for s in document["services"]] == ["flask", "fastapi"]
    for service in document["services"]:
        rounds = service["rounds"]
        # Two rounds asked for: an unbalanced one is run again, at most two extra runs in all.
        assert 2 <= len(rounds) <= 4
        assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
        balanced = [r["round"] for r in rounds if not r["unbalanced"]]
        if len(balanced) == 2:
            assert balanced[-1] == len(rounds)  # no round after the second balanced one
        else:
            assert len(rounds) == 4  # the extra runs ran out
        # Alternating order: odd rounds start with the instrumented app, even ones with the bare.
        expected_first = ["instrumented" if r["round"] % 2 else "bare" for r in rounds]
        assert [r["order"][0] for r in rounds] == expected_first
        for r in rounds:
            for side in ("instrumented", "bare"):
                assert r[side]["requests"] > 0
                assert r[side]["non_2xx"] == 0
            assert r["ratio"] == pytest.approx(r["instrumented"]["rps"] / r["bare"]["rps"], 1e-3)
            # Linux: the servers' CPU time per request, read from /proc for their process trees.
            instrumented_cpu = r["instrumented"]["cpu_ms_per_request"]
            assert instrumented_cpu > 0 and r["bare"]["cpu_ms_per_request"] > 0
            assert r["cpu_ratio"] == pytest.approx(
                r["bare"]["cpu_ms_per_request"] / instrumented_cpu, 1e-2
            )
            # How the work spread over the server's workers (2 each: the services' default).
            assert r["workers"] == 2
            for side in ("instrumented", "bare"):
                assert 0.5 <= r[side]["busiest_worker_share"] <= 1.0
            assert set(r["unbalanced"]) <= {"instrumented", "bare"}
        left_out = [r["round"] for r in rounds if r["unbalanced"]]
        assert service["rounds_left_out"] == (left_out if len(left_out) < len(rounds) else [])
        assert f"{service['service']} median ratio" in done.stdout
