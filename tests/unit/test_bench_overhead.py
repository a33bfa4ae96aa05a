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
