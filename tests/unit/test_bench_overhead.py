"""`make bench-overhead`: the bare apps, the options and the report line (no servers here).

The run itself, with real servers and wrk, is tests/integration/test_bench_overhead_run.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from loadtests.bench import bare_apps, overhead
from tests.unit.service_clients import ServiceClient


def _bare_client(service: str) -> ServiceClient:
    if service == "flask":
        return ServiceClient("flask", bare_apps.create_flask().test_client())
    return ServiceClient("fastapi", TestClient(bare_apps.create_fastapi()))


@pytest.mark.parametrize("service", ["flask", "fastapi"])
def test_bare_apps_answer_hello_with_the_services_bytes(
    service: str, request: pytest.FixtureRequest
) -> None:
    client: ServiceClient = request.getfixturevalue(f"{service}_client")
    answer = client.get("/hello")
    bare = _bare_client(service).get("/hello")
    assert answer.status == bare.status == 200
    assert bare.body == answer.body
    assert bare.headers["content-type"] == answer.headers["content-type"]


@pytest.mark.parametrize("service", ["flask", "fastapi"])
def test_bare_apps_have_the_routes_in_front_of_hello_and_no_instrumentation(service: str) -> None:
    bare = _bare_client(service)
    # The route the service registers before /hello, so both pay the same route match.
    assert bare.get("/healthz").status == 200
    assert bare.get("/io").status == 404
    assert "x-request-id" not in bare.get("/hello").headers


@pytest.mark.parametrize(
    "argv",
    [
        ["--rounds", "0"],
        ["--rounds", "three"],
        ["--duration", "-1"],
        ["--connections", "0"],
        ["--services", "nginx"],
        ["--services", ""],
        ["--threads", "4", "--connections", "2"],
        ["--no-such-option"],
    ],
)
def test_bad_options_exit_2_before_anything_starts(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert overhead.main([*argv, "--out", str(tmp_path)]) == 2
    assert "bench-overhead: error:" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_environment_value_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BENCH_OVERHEAD_ROUNDS", "many")
    assert overhead.main(["--out", str(tmp_path)]) == 2
    assert "--rounds" in capsys.readouterr().err


def test_options_come_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_OVERHEAD_DURATION", "4")
    opts = overhead.parse(["--rounds", "5", "--services", "fastapi"])
    assert (opts.rounds, opts.duration_s, opts.services) == (5, 4, ("fastapi",))
    assert overhead.parse([]).services == ("flask", "fastapi")


def test_report_line_goes_before_body_end_and_replaces_the_previous_one(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text("<html><body>\n<h1>bench</h1>\n</body></html>\n")
    overhead.add_report_line(page, "<p>first</p>")
    overhead.add_report_line(page, "<p>second</p>")
    text = page.read_text()
    assert "first" not in text
    assert text.count("<p>second</p>") == 1
    assert text.index("<p>second</p>") < text.index("</body>")
    assert text.index("<h1>bench</h1>") < text.index("<p>second</p>")


def test_tree_cpu_counts_the_workers_of_a_launcher(tmp_path: Path) -> None:
    """A launcher whose child spins 0.3 s of CPU and then waits: the tree's CPU includes it."""
    marker = tmp_path / "spun"
    child = (
        "import pathlib, time\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "time.sleep(60)\n"
    )
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])",
        ],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists()
        cpu = overhead.tree_cpu_s(launcher.pid)
        assert cpu is not None and cpu >= 0.25
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()


def _side(rps: float, share: float | None) -> overhead.WrkResult:
    return overhead.WrkResult(
        rps=rps, requests=int(rps), non_2xx=0, socket_errors=0, busiest_worker_share=share
    )


def test_a_round_with_one_worker_doing_the_work_is_left_out_of_the_medians() -> None:
    result = overhead.ServiceOverhead("fastapi")
    even, one_worker = 0.52, 0.97
    result.rounds = [
        overhead.RoundResult(1, overhead.VARIANTS, _side(90, even), _side(100, even), workers=2),
        overhead.RoundResult(2, overhead.VARIANTS, _side(50, one_worker), _side(100, even), 2),
        overhead.RoundResult(3, overhead.VARIANTS, _side(94, even), _side(100, 0.6), workers=2),
    ]
    assert [r.unbalanced_sides for r in result.rounds] == [(), ("instrumented",), ()]
    assert result.left_out == [2]
    assert result.median_ratio == pytest.approx(0.92)
    document = result.to_dict()
    assert document["rounds_left_out"] == [2]
    assert document["rounds"][1]["unbalanced"] == ["instrumented"]
    line = overhead.summary_line([result], overhead.parse([]))
    assert "rounds 2 unbalanced, left out of the median" in line


def test_with_one_worker_or_every_round_unbalanced_every_round_counts() -> None:
    single = overhead.RoundResult(1, overhead.VARIANTS, _side(50, 1.0), _side(100, 1.0), workers=1)
    assert single.balanced
    result = overhead.ServiceOverhead("fastapi")
    result.rounds = [
        overhead.RoundResult(1, overhead.VARIANTS, _side(50, 0.99), _side(100, 0.5), workers=2),
        overhead.RoundResult(2, overhead.VARIANTS, _side(100, 0.5), _side(50, 0.99), workers=2),
    ]
    assert result.left_out == []
    assert result.median_ratio == pytest.approx((0.5 + 2.0) / 2)
    # Four workers: an even share is 0.25, the bound halfway to all of it.
    assert overhead.unbalanced_share(4) == pytest.approx(0.625)


def test_busiest_child_share_reads_the_children_between_two_readings() -> None:
    root = 100
    before = {root: 5.0, 101: 1.0, 102: 2.0}
    after = {root: 9.0, 101: 4.0, 102: 3.0, 103: 0.0}  # the root's own time is not a worker's
    assert overhead.busiest_child_share(root, before, after) == pytest.approx(0.75)
    assert overhead.busiest_child_share(root, after, after) is None
