"""The bench end to end: a quick-profile run against the native test stack.

Runs ``python -m loadtests.bench --profile quick`` in a subprocess (Locust monkey-patches the
standard library with gevent, which must not happen inside pytest), writing into tmp_path.
Checks that the report exists, every step has figures for both services (ws_* on ASGI only),
the io results follow Little's law in direction, and the client's request counts agree with
the servers' own Prometheus counters within the bench's stated tolerance.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from loadtests.bench import analysis
from tests.bench_process import BENCH_COMMAND, REPO_ROOT, bench_env, finished_run, run_bench
from tests.browser import BROKEN_IMAGES_JS, PageProblems, chromium

pytestmark = pytest.mark.integration

#: The quick profile promises <= 90 s; allow for a slow, shared machine.
BENCH_TIMEOUT_S = 180


def _locust_targets(stack) -> list[dict]:
    return [t for t in stack.targets("locust") if t.get("health") == "up"]


@pytest.fixture(scope="module")
def bench_run(stack, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-reports")
    proc = subprocess.Popen(
        [*BENCH_COMMAND, "--profile", "quick", "--out", str(out)],
        cwd=REPO_ROOT,
        env=bench_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    # While it runs, the stack's Prometheus must find and scrape the bench's Locust.
    seen: list[dict] = []
    deadline = time.monotonic() + BENCH_TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if not seen:
            seen = _locust_targets(stack)
        time.sleep(1)
    try:
        stdout, stderr = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
    run = finished_run(out, proc.returncode, stdout, stderr)
    return {
        "out": out,
        "run_dir": run.run_dir,
        "results": run.results,
        "stdout": stdout,
        "seen": seen,
    }


def test_bench_measures_the_running_stack_and_shows_in_its_prometheus(bench_run, stack):
    # No --url, no --prometheus-url: the stack `make up` started, from stackctl's settings.
    options = bench_run["results"]["meta"]["options"]
    assert options["url"] == stack.public_url
    assert options["prometheus_url"] == stack.prometheus_url
    # Locust was a target of the stack's Prometheus, scraped and up, while the bench ran ...
    seen = bench_run["seen"]
    assert seen, "the bench's Locust never appeared among the stack's Prometheus targets"
    assert seen[0]["labels"]["role"] == "bench"
    assert seen[0]["scrapeUrl"].startswith(f"http://{stack.settings.address('locust_metrics')}")
    # ... and is gone with it (the file-discovery entry is removed at the end).
    assert not (stack.targets_dir / "locust.json").exists()


def test_report_files_exist(bench_run, stack):
    run_dir = bench_run["run_dir"]
    assert (bench_run["out"] / "latest").is_symlink()
    for name in ("results.json", "report.md", "report.html"):
        assert (run_dir / name).stat().st_size > 0, name
    html = (run_dir / "report.html").read_text()
    assert "data:image/png;base64," in html
    assert 'src="http' not in html  # self-contained
    assert list((run_dir / "csv").glob("io_wsgi_*_stats.csv"))
    assert "Findings:" in bench_run["stdout"]
    # The exporter's file-discovery entry is gone once the bench ended.
    assert not (stack.targets_dir / "locust.json").exists()


def test_every_step_has_results_for_both_services(bench_run):
    results = bench_run["results"]
    assert results["complete"] is True
    steps = results["steps"]
    options = results["meta"]["options"]
    for scenario in options["scenarios"]:
        targets = {"asgi"} if scenario.startswith("ws_") else {"wsgi", "asgi"}
        for target in targets:
            levels = sorted(
                s["users"] for s in steps if (s["scenario"], s["target"]) == (scenario, target)
            )
            assert levels == options["users"][scenario], (scenario, target)
        assert not [s for s in steps if s["scenario"] == scenario and s["target"] not in targets]
    for s in steps:
        assert s["requests"] > 0 and s["rps"] > 0, s["scenario"]
        assert s["fail_pct"] <= 1, (s["scenario"], s["target"], s["errors"])
        assert s["p50_ms"] is not None and s["p99_ms"] >= s["p50_ms"]
    assert {(n["scenario"], n["target"]) for n in results["not_applicable"]} == {
        ("ws_echo", "wsgi")
    }
    meta = results["meta"]
    assert meta["services"]["wsgi"]["interface"] == "wsgi"
    assert meta["services"]["asgi"]["interface"] == "asgi"
    assert meta["versions"]["locust"] and meta["cpu_count"]


def test_io_follows_littles_law_in_direction(bench_run):
    results = bench_run["results"]
    io_ms = results["meta"]["scenario_settings"]["io_ms"]
    capacity = results["meta"]["capacity"]["wsgi"]
    cap_rps = capacity / (io_ms / 1000)  # 2 workers / 0.1 s = 20 req/s
    io = {(s["target"], s["users"]): s for s in results["steps"] if s["scenario"] == "io"}
    low, high = sorted({u for _, u in io})[0], sorted({u for _, u in io})[-1]
    # WSGI: capped near workers / latency at every level above its capacity ...
    for users in (low, high):
        rps = io[("wsgi", users)]["rps"]
        assert 0.7 * cap_rps <= rps <= 1.05 * cap_rps, (users, rps, cap_rps)
    # ... and the excess waits in the queue: latency grows with the users.
    assert io[("wsgi", high)]["p50_ms"] > 2 * io[("wsgi", low)]["p50_ms"]
    # ASGI: throughput grows with the users, latency stays near the wait.
    asgi_low, asgi_high = io[("asgi", low)], io[("asgi", high)]
    assert asgi_high["rps"] > 0.6 * (high / low) * asgi_low["rps"]
    assert asgi_low["rps"] > 0.6 * analysis.littles_law_ideal(low, io_ms / 1000)
    assert asgi_high["p50_ms"] < 3 * io_ms
    assert asgi_high["rps"] > 2 * io[("wsgi", high)]["rps"]
    text = "\n".join(results["findings"])
    assert "io/WSGI" in text and "Little's law" in text


def test_client_and_server_counts_agree(bench_run):
    blocks = bench_run["results"]["blocks"]
    assert blocks
    for b in blocks:
        check = b["crosscheck"]
        assert check["ok"] is not None, (b["scenario"], b["target"], b.get("crosscheck_reason"))
        assert check["ok"], (b["scenario"], b["target"], check)
        # Stated tolerance: within max(5, 2 %) beyond the requests cut off at the end.
        assert check["tolerance"] == max(
            analysis.CROSSCHECK_ABS_TOL, analysis.CROSSCHECK_REL_TOL * check["client_completed"]
        )


def test_report_html_is_self_contained_and_every_plot_renders_in_a_browser(bench_run):
    report_html = bench_run["run_dir"] / "report.html"
    with chromium() as browser:
        page = browser.new_page()
        problems = PageProblems()
        problems.watch(page)
        page.goto(report_html.as_uri(), wait_until="load")
        assert page.locator("img").count() >= 4  # io, cpu, hello, stream at least
        assert page.evaluate(BROKEN_IMAGES_JS) == []
        assert problems.all() == [], problems
        # Self-contained: nothing but the file itself and its embedded images is fetched.
        fetched = [url for url in problems.requested_urls if not url.startswith("data:")]
        assert fetched == [report_html.as_uri()]


# ------------------------------------------------------------------ open model


def test_open_model_sends_on_schedule_whether_or_not_answers_come_back(stack, tmp_path):
    """A deliberately slow target: /wsgi/io?ms=2000 on 2 sync workers answers at most 1/s.

    Offered 8/s, a closed loop would send only as answers come back. The open model sends on
    its schedule: the number sent follows the offered rate, most of it stays unanswered, and
    the answers' latency, timed from their scheduled send, includes the time they queued.
    """
    rate, io_ms, warmup, measure = 8.0, 2000, 1.0, 4.0
    run = run_bench(
        [
            "--model", "open", "--scenarios", "io", "--targets", "wsgi",
            "--rates", f"io={rate:g}", "--io-ms", str(io_ms), "--warmup", f"{warmup:g}",
            "--duration", f"{measure:g}", "--prometheus-url", "none",
        ],
        tmp_path,
        bench_env(LOCUST_METRICS_DISABLE="1"),
        BENCH_TIMEOUT_S,
    )  # fmt: skip
    results = run.results
    assert results["schema"] == 3 and results["meta"]["options"]["model"] == "open"
    capacity = results["meta"]["capacity"]["wsgi"]  # requests running at once
    (step,) = results["steps"]
    (block,) = results["blocks"]
    assert step["model"] == "open" and step["users"] is None and step["offered_rps"] == rate
    # The schedule, not the answers, decides what is sent: rate x time, over the whole block
    # (warm-up and window) and over the window alone ...
    elapsed = block["t1"] - block["t0"]
    assert block["client"]["started"] >= 0.8 * rate * elapsed, block
    assert step["sent"] >= 0.8 * rate * measure, step
    # ... although the server could answer only `capacity` requests per io_ms: far fewer.
    most_answers = capacity * (elapsed * 1000 / io_ms + 1)
    assert block["client"]["completed"] <= most_answers < block["client"]["started"] / 2
    assert step["unanswered"] >= step["sent"] / 2
    # Latency runs from the scheduled send, so it includes the queue: never below the wait,
    # and the requests beyond the first `capacity` (answered in the window) queued for a round.
    assert step["p50_ms"] >= io_ms
    assert step["max_ms"] >= 1.5 * io_ms
    # The requests it gave up on were still queued at gunicorn: the bench waited them out, so
    # the stack it hands back (to the next block, or the next test) is not still busy.
    assert "drained in" in run.stdout, run.stdout[-2000:]
