"""A tiny matrix run of the bench against the native test stack: flask, fastapi and the
gthread and gevent Flask variants, every scenario of the matrix profile at very short windows.

What the bench says runs, and where, must be what the stack's /variants.json says; a cell is
measured exactly where the variant serves the scenario and "not applicable" elsewhere (the test
asks the stack itself: the WebSockets flag, and how POST /poll answers); the client's counts
must match the servers' own, and io must follow Little's law in direction across capacities.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.bench_process import bench_env, run_bench

WANTED = ("flask", "fastapi", "flask-gthread", "flask-gevent")
USERS = {"io": [4, 12], "hello": [5], "stream": [3], "poll": [3, 6], "ws_echo": [4]}
IO_USERS = 12

pytestmark = pytest.mark.integration


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def _serves_poll(url: str) -> bool:
    """Whether the stack's variant under `url` has /poll (the contract's 404/501 when not)."""
    req = urllib.request.Request(
        f"{url}/poll?room=test-probe",
        data=b'{"text": "probe"}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return 200 <= resp.status < 300
    except urllib.error.HTTPError as exc:
        assert exc.code in (404, 501), exc.read()
        return False


@pytest.fixture(scope="module")
def listed(stack) -> dict[str, dict]:
    doc = _get_json(f"{stack.public_url}/variants.json")
    entries = {v["name"]: v for v in doc["variants"] if v["name"] in WANTED}
    if len(entries) < 3:
        pytest.skip(f"TEST_VARIANTS leaves only {sorted(entries)} of {WANTED} running")
    return entries


@pytest.fixture(scope="module")
def matrix_run(stack, listed, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-matrix")
    users = ";".join(f"{s}={','.join(map(str, levels))}" for s, levels in USERS.items())
    run = run_bench(
        [
            "--profile", "matrix", "--targets", ",".join(listed), "--users", users,
            "--warmup", "1", "--duration", "2", "--poll-timeout-ms", "1000",
        ],
        out,
        bench_env(BENCH_PROFILE="default"),  # the flag wins over the environment
        timeout_s=420,
    )  # fmt: skip
    return run.results, run.run_dir, run.stdout


def test_targets_are_what_the_stacks_variants_json_lists(matrix_run, listed):
    results, _, stdout = matrix_run
    meta = results["meta"]
    assert meta["options"]["profile"] == "matrix"
    assert meta["options"]["targets"] == list(listed)
    for name, entry in listed.items():
        target = meta["targets"][name]
        assert target["prefix"] == entry["prefix"].rstrip("/")
        assert target["capacity"] == entry["capacity"] == meta["capacity"][name]
        assert meta["services"][name]["service"] == name  # its own /healthz, under that prefix
    assert "planned about" in stdout and f"on {len(listed)} targets" in stdout


def test_each_cell_is_measured_where_the_variant_serves_it_and_not_applicable_elsewhere(
    matrix_run, listed, stack
):
    results, _, _ = matrix_run
    measured: dict[tuple[str, str], list[int]] = {}
    for step in results["steps"]:
        measured.setdefault((step["scenario"], step["target"]), []).append(step["users"])
        assert step["requests"] > 0 and step["fail_pct"] <= 1, (step["target"], step["errors"])
    absent = {(n["scenario"], n["target"]): n["reason"] for n in results["not_applicable"]}
    for name, entry in listed.items():
        serves = {
            "ws_echo": entry["websockets"],
            "poll": _serves_poll(stack.public_url + entry["prefix"].rstrip("/")),
        }
        for scenario, levels in USERS.items():
            key = (scenario, name)
            if serves.get(scenario, True):
                assert sorted(measured.get(key, [])) == levels and key not in absent, key
            else:
                assert key not in measured and key in absent, key
    assert not set(measured) & set(absent)


def test_io_follows_littles_law_across_capacities(matrix_run, listed):
    results, _, _ = matrix_run
    io_s = results["meta"]["scenario_settings"]["io_ms"] / 1000
    io = {s["target"]: s for s in results["steps"] if (s["scenario"], s["users"]) == ("io", 12)}
    for name, step in io.items():
        capacity = listed[name]["capacity"]
        bound = min(IO_USERS, capacity or IO_USERS) / io_s
        assert step["ideal_rps"] == pytest.approx(bound)
        assert step["rps"] <= 1.1 * bound, (name, step["rps"], bound)  # nothing beats the bound
    # Two sync workers serve 20/s; sixteen gthread threads run all twelve users' waits at once.
    if "flask-gthread" in io:
        assert io["flask-gthread"]["rps"] > 2 * io["flask"]["rps"]


def test_poll_cells_hold_no_more_polls_than_the_capacity(matrix_run, listed):
    results, _, _ = matrix_run
    for step in (s for s in results["steps"] if s["scenario"] == "poll"):
        capacity = listed[step["target"]]["capacity"]
        p = step["poll"]
        assert p["answered"] == p["with_message"] + p["timed_out"]
        if capacity is not None and p["held_max"] is not None:
            assert p["held_max"] <= capacity, step["target"]


def test_client_and_server_counts_agree_for_every_variant(matrix_run):
    results, _, _ = matrix_run
    services = {b["service"] for b in results["blocks"]}
    assert services == set(results["meta"]["options"]["targets"])
    for block in results["blocks"]:
        check = block["crosscheck"]
        assert check["ok"], (block["scenario"], block["service"], check)


def test_the_report_shows_the_matrix(matrix_run, listed):
    results, run_dir, stdout = matrix_run
    md = (run_dir / "report.md").read_text()
    assert "## The matrix: variants x scenarios" in md
    assert "| variant | server | capacity | io @4u | io @12u | hello @5u |" in md
    for name, entry in listed.items():
        capacity = "unbounded" if entry["capacity"] is None else str(entry["capacity"])
        assert f"| {name} | {entry['server']} {entry['worker_class']} " in md
        assert f" | {capacity} | " in md
    ran = {s["scenario"] for s in results["steps"]}
    for scenario in ran:
        assert (run_dir / "plots" / f"{scenario}.png").read_bytes()[:4] == b"\x89PNG"
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(ran)
    assert "Matrix (throughput · % of bound):" in stdout
    assert any(f.startswith("io at 12 users:") for f in results["findings"])
