"""`make lab` against the real native test stack: every lab runs and its verdict follows from
its own numbers; bad options and a missing stack are one line and exit code 2.

Small N and waits keep the whole file to a few seconds of load. No timing asserts: the checks
are structural (waves of the declared capacity, probes that starve or not, pings that wait on
a blocked loop at least part of the block) or the verdict's consistency with its own checks.
"""

from __future__ import annotations

import io
import math
import os
import socket
import subprocess
import sys

import pytest

from loadtests.lab import cpu_bound, http2_edge, long_lived, loop_stall, race, slow_clients
from loadtests.lab.catalog import BY_NAME, LABS
from loadtests.lab.cli import run_lab
from loadtests.lab.model import Knobs, LabResult, Outcome
from loadtests.lab.runner import Console
from loadtests.lab.stack import LabStack
from stackctl.settings import REPO_ROOT

pytestmark = pytest.mark.integration

SMALL = {
    "sync-capacity": Knobs(n=5, ms=150),
    "async-waits": Knobs(n=8, ms=150),
    "cpu-bound": Knobs(n=4),
    "loop-stall": Knobs(ms=300),
    "long-lived": Knobs(ms=1000),
}


def _run(stack, name: str) -> tuple[LabResult, str]:
    out = io.StringIO()
    lab_stack = LabStack.from_settings(stack.settings, "native")
    result = run_lab(BY_NAME[name], lab_stack, SMALL.get(name, Knobs()), Console(out))
    return result, out.getvalue()


def _consistent(result: LabResult) -> None:
    """The outcome is exactly what the checks say, and the output shows each of them."""
    verdict = result.verdict
    if verdict.outcome is not Outcome.SKIPPED:
        assert verdict.checks
        assert verdict.held == all(check.held for check in verdict.checks)
        for check in verdict.checks:
            assert check.held == (check.low <= check.measured <= check.high)


def _lab_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadtests.lab", *args],
        cwd=REPO_ROOT,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_sync_capacity_finishes_in_waves_of_the_declared_capacity(stack):
    result, output = _run(stack, "sync-capacity")
    got: race.RaceMeasurement = result.measurement
    capacity = LabStack.from_settings(stack.settings, "native").service("wsgi").capacity
    _consistent(result)
    assert got.failures == 0
    assert got.waves == math.ceil(5 / capacity)
    assert max(got.wave_sizes) <= capacity
    assert "Expect:" in output and "Verdict (sync-capacity)" in output and "Watch" in output
    assert f"ceil(5 / {capacity})" in output  # the arithmetic is printed


def test_async_waits_finish_together(stack):
    result, _ = _run(stack, "async-waits")
    got: race.RaceMeasurement = result.measurement
    _consistent(result)
    assert got.failures == 0
    assert got.wave_sizes == (8,)


def test_cpu_bound_work_is_never_worked_on_by_more_than_the_processes(stack):
    result, _ = _run(stack, "cpu-bound")
    got: cpu_bound.CpuMeasurement = result.measurement
    _consistent(result)
    for side in (got.wsgi, got.asgi):
        assert side.failures == 0
        # Server time / wall time cannot exceed the processes working (plus timer noise).
        assert side.parallelism <= side.processes * cpu_bound.PARALLELISM_SLACK


def test_loop_stall_pings_on_the_blocked_loop_wait_for_it(stack):
    result, output = _run(stack, "loop-stall")
    got: loop_stall.StallMeasurement = result.measurement
    _consistent(result)
    assert got.stalled_sockets >= 1  # some ping shared the loop and waited >= 0.6 x the block
    assert "40 threads" in output  # the threadpool's limit is named


def test_long_lived_streams_pin_the_sync_workers(stack):
    result, output = _run(stack, "long-lived")
    got: long_lived.PinnedMeasurement = result.measurement
    _consistent(result)
    assert (got.wsgi_status, got.asgi_status) == (200, 200)
    # The WSGI hello could only be served once a stream ended: it waited for most of one.
    assert got.wsgi_hello_s >= long_lived.WAIT_LOW * got.wsgi_remaining_s
    assert "long polling" in output


def test_slow_clients_starve_gunicorn_only_without_nginx(stack):
    result, _ = _run(stack, "slow-clients")
    got: slow_clients.SlowMeasurement = result.measurement
    _consistent(result)
    assert got.through_nginx == (200,) * slow_clients.PROBES
    assert got.direct is not None and 200 not in got.direct
    assert got.recovered == (200,) * slow_clients.PROBES


def test_http2_edge_serves_both_interfaces_or_says_it_is_not_there(stack):
    result, output = _run(stack, "http2-edge")
    lab_stack = LabStack.from_settings(stack.settings, "native")
    _consistent(result)
    if lab_stack.tls_url is None:
        assert result.verdict.outcome is Outcome.SKIPPED
        assert result.verdict.checks == ()
        assert "not in this stack yet" in output
    else:
        # The stack has its TLS port: both services answer over HTTP/2 through it.
        got: http2_edge.Http2Measurement = result.measurement
        assert got.alpn == "h2"
        assert got.answers == {"wsgi": ("HTTP/2", 200), "asgi": ("HTTP/2", 200)}
        assert result.verdict.held


def test_make_lab_lists_all_seven():
    listed = _lab_cli()
    assert listed.returncode == 0, listed.stderr
    for lab in LABS:
        assert lab.name in listed.stdout
    assert len(LABS) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-lab"], "unknown lab"),
        (["sync-capacity", "--n", "0"], "out of range"),
        (["sync-capacity", "--ms", "99999"], "out of range"),
        (["slow-clients", "--n", "3"], "takes no N"),
        (["async-waits", "--n", "lots"], "invalid int"),
    ],
)
def test_bad_options_get_one_line_and_exit_2(args, message):
    done = _lab_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr


def test_no_stack_running_names_make_up(tmp_path):
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _lab_cli(
        "sync-capacity", STACK_PROFILE="default", HTTP_PORT=str(port), STATE_DIR=str(tmp_path)
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "make up" in done.stderr
