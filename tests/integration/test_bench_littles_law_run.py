"""`python -m loadtests.bench.littles_law` for real, against the test stack's variants through
nginx with wrk. Asserts what it measures and writes, never how fast anything is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.bench import littles_law
from tests.conftest import TEST_VARIANTS, StackHandle

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def run(stack: StackHandle, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadtests.bench.littles_law", "--url", stack.public_url]
        + ["--duration", "1", "--warmup", "0", "--connections", "4", "--no-strict"]
        + ["--out", str(out), *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60 + 10 * len(TEST_VARIANTS),
    )


def test_every_running_variant_is_measured_against_its_bound(stack: StackHandle, tmp_path: Path):
    done = run(stack, tmp_path)
    assert done.returncode == 0, done.stderr
    (written,) = tmp_path.glob("*-littles-law/littles_law.json")
    assert (written.parent / "littles_law.png").stat().st_size > 0
    document = json.loads(written.read_text())
    rows = {row["name"]: row for row in document["variants"]}
    assert list(rows) == [variant.name for variant in TEST_VARIANTS]
    for variant in TEST_VARIANTS:
        row = rows[variant.name]
        assert row["capacity"] == variant.capacity
        expected_concurrent = 4 if variant.capacity is None else min(4, variant.capacity)
        assert row["concurrent"] == expected_concurrent
        assert row["bound_rps"] == pytest.approx(expected_concurrent / 0.1)
        assert row["requests"] > 0 and row["errors"] == 0
        assert row["ratio"] == pytest.approx(row["measured_rps"] / row["bound_rps"], abs=1e-3)
    assert "| variant |" in done.stdout


def test_a_variant_that_is_not_running_is_a_clear_error(stack: StackHandle, tmp_path: Path):
    done = run(stack, tmp_path, "--variants", "flask,no-such-variant")
    assert done.returncode == 2
    assert "not running: no-such-variant" in done.stderr
    assert not list(tmp_path.glob("*"))


def test_the_bound_is_min_of_connections_and_capacity_over_the_wait():
    assert littles_law.bound(50, 2) == (2, 20.0)
    assert littles_law.bound(50, 2000) == (50, 500.0)
    assert littles_law.bound(50, None) == (50, 500.0)
