"""Unit tests of the bench's report maths, option parsing and rendering (no Locust, no network).

Locust monkey-patches the standard library when imported, so nothing here imports
``loadtests.scenarios``, ``loadtests.bench.driver`` or ``loadtests.locustfile``; the one check
of the entry point that would import them runs it in a subprocess.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import is_dataclass
from pathlib import Path

import pytest

from gateway_common import variants
from loadtests.bench import analysis, findings, prose, report
from loadtests.bench.options import PROFILES, UsageError, parse, resolve
from loadtests.bench.results import (
    Block,
    ClientCounts,
    Meta,
    NotApplicable,
    Run,
    Step,
    TimelineBin,
)
from loadtests.bench.targets import running_from_document
from loadtests.exporter import _Monotonic, parse_bind, scrape_target
from loadtests.settings import (
    ScenarioSettings,
    applicable,
    parse_steps,
    prefix,
    ws_url,
)
from stackctl.routes import variants_document

REPO_ROOT = Path(__file__).resolve().parents[2]


def running(selection: str = "") -> tuple:
    """What a stack started with VARIANTS=<selection> lists in its /variants.json."""
    doc = variants_document(variants.parse_selection(selection), {})
    return running_from_document(json.loads(doc))


def resolved(argv: list[str], environ: dict | None = None, selection: str = ""):
    """The options as the bench runs them against such a stack."""
    return resolve(parse(argv, environ={} if environ is None else environ), running(selection))


def names(steps) -> list[tuple]:
    return [(scenario, target.name, level) for scenario, target, level in steps]


# ------------------------------------------------------------------ Little's law


def test_littles_law_wsgi_is_capped_by_capacity():
    # 2 sync workers, 100 ms waits: at most 2 / 0.1 = 20 req/s whatever the users.
    assert analysis.littles_law_ideal(100, 0.1, 2) == pytest.approx(20.0)
    assert analysis.littles_law_ideal(10, 0.1, 2) == pytest.approx(20.0)
    assert analysis.littles_law_ideal(1, 0.1, 2) == pytest.approx(10.0)


def test_littles_law_asgi_scales_with_users():
    assert analysis.littles_law_ideal(100, 0.1, None) == pytest.approx(1000.0)
    assert analysis.littles_law_ideal(25, 0.1) == pytest.approx(250.0)


def test_littles_law_queueing_latency():
    # 100 users share 2 workers: each waits for 50 turns of 100 ms.
    assert analysis.littles_law_latency(100, 0.1, 2) == pytest.approx(5.0)
    assert analysis.littles_law_latency(100, 0.1, None) == pytest.approx(0.1)


def test_littles_law_rejects_nonsense():
    with pytest.raises(ValueError):
        analysis.littles_law_ideal(10, 0, 2)
    with pytest.raises(ValueError):
        analysis.littles_law_ideal(-1, 0.1, 2)


def test_in_flight_is_lambda_times_w():
    assert analysis.in_flight(20.0, 5000.0) == pytest.approx(100.0)
    assert analysis.in_flight(1000.0, 100.0) == pytest.approx(100.0)


def test_percent_and_gap():
    assert analysis.percent_of(19.0, 20.0) == pytest.approx(95.0)
    assert analysis.gap_pct(19.0, 20.0) == pytest.approx(-5.0)
    assert analysis.percent_of(5.0, None) is None
    assert analysis.gap_pct(5.0, 0) is None
    assert analysis.ratio(10, 4) == 2.5
    assert analysis.ratio(10, 0) is None


def test_ideal_rps_per_scenario():
    kw = {"io_ms": 100, "stream_s": 0.9, "ws_rate": 10}
    assert analysis.ideal_rps("io", 50, 2, **kw) == pytest.approx(20.0)
    assert analysis.ideal_rps("io", 50, None, **kw) == pytest.approx(500.0)
    assert analysis.ideal_rps("stream", 9, 2, **kw) == pytest.approx(2 / 0.9)
    assert analysis.ideal_rps("ws_echo", 10, None, **kw) == pytest.approx(100.0)
    assert analysis.ideal_rps("hello", 10, 2, **kw) is None
    assert analysis.ideal_rps("cpu", 10, 2, **kw) is None
    # poll: each held poll ends once per message (every 0.5 s): 2 held -> 4/s, 20 -> 40/s.
    assert analysis.ideal_rps("poll", 20, 2, **kw, poll_wait_s=0.5) == pytest.approx(4.0)
    assert analysis.ideal_rps("poll", 20, None, **kw, poll_wait_s=0.5) == pytest.approx(40.0)


# ------------------------------------------------------------------ saturation


def test_saturation_flat_from_the_first_level():
    sat = analysis.saturation([(10, 19.8), (25, 19.9), (50, 19.7), (100, 19.8)])
    assert sat.saturated and sat.at_first_level
    assert (sat.from_level, sat.to_level) == (10, 25)
    assert sat.efficiency == pytest.approx(0.0, abs=0.01)


def test_saturation_linear_never_saturates():
    sat = analysis.saturation([(10, 98), (25, 245), (50, 490), (100, 975)])
    assert sat.saturated is False
    assert sat.to_level == 100
    assert sat.peak_rps == 975


def test_saturation_knee_in_the_middle():
    sat = analysis.saturation([(10, 100), (25, 250), (50, 300), (100, 310)])
    assert sat.saturated
    assert (sat.from_level, sat.to_level) == (25, 50)
    assert not sat.at_first_level
    # +20 % throughput for +100 % users
    assert sat.efficiency == pytest.approx(0.2)


def test_saturation_needs_two_levels():
    assert analysis.saturation([(10, 20.0)]) is None
    assert analysis.saturation([]) is None


# ------------------------------------------------------------------ cross-check


def test_crosscheck_exact_and_within_tolerance():
    ok = analysis.crosscheck(started=1000, completed=1000, server=1000)
    assert ok.ok and ok.diff == 0 and ok.diff_pct == 0
    # Requests cut off at the end (started, not completed) may be counted by the server.
    cut = analysis.crosscheck(started=1100, completed=1000, server=1090)
    assert cut.ok
    # 2 % tolerance of 1000 = 20
    near = analysis.crosscheck(started=1000, completed=1000, server=985)
    assert near.ok and near.tolerance == pytest.approx(20)


def test_crosscheck_mismatch():
    low = analysis.crosscheck(started=1000, completed=1000, server=900)
    assert low.ok is False and low.diff == -100 and low.diff_pct == pytest.approx(-10)
    assert low.excess == 100
    high = analysis.crosscheck(started=1000, completed=1000, server=1100)
    assert high.ok is False


def test_crosscheck_gateway_errors_may_be_missing_on_the_server():
    # 50 answers were 502 from nginx: the app never saw them.
    res = analysis.crosscheck(started=1000, completed=1000, server=950, gateway_errors=50)
    assert res.ok


def test_crosscheck_small_counts_use_absolute_tolerance():
    res = analysis.crosscheck(started=10, completed=10, server=13)
    assert res.tolerance == analysis.CROSSCHECK_ABS_TOL and res.ok


def test_crosscheck_without_server_data():
    res = analysis.crosscheck(started=10, completed=10, server=None)
    assert res.ok is None and res.diff is None
    assert "excess" not in res.to_dict() and res.to_dict()["ok"] is None


def _series(samples, scrapes=()):
    return analysis.CounterSeries(tuple(samples), tuple(scrapes))


def test_counter_delta_between_scrapes():
    samples = [(0, 100), (5, 100), (10, 150), (15, 300), (20, 420), (25, 420), (30, 420)]
    res = analysis.counter_delta([_series(samples)], t0=7, t1=21)
    assert res.value == 320 and res.before_t == 5 and res.after_t == 25


def test_counter_delta_sums_series_and_a_series_born_during_the_run_starts_at_zero():
    a = _series([(0, 10), (5, 20), (10, 30), (25, 60)])
    b = _series([(10, 5), (15, 50), (25, 80)])  # e.g. status="404" first seen during the run
    res = analysis.counter_delta([a, b], t0=7, t1=21)
    assert res.value == (60 - 20) + 80


def test_counter_delta_on_a_fresh_stack_ignores_an_earlier_process():
    # The previous stack counted 200 (its samples are still stored); the restarted service
    # creates the series again with its first request, during the run. The scrapes at 0..15
    # without a sample of the series say it did not exist then: it counts from 0.
    scrapes = [-30, -25, 0, 5, 10, 15, 20, 25, 30]
    old_then_new = [(-30, 200), (-25, 200), (20, 499), (25, 699), (30, 699)]
    res = analysis.counter_delta([_series(old_then_new, scrapes)], t0=12, t1=22)
    assert res.value == 699 and res.reason is None
    # Without the scrape times the stored 200 would be taken as the value at the start.
    assert analysis.counter_delta([_series(old_then_new)], t0=12, t1=22).value == 499


def test_counter_delta_still_detects_a_restart_during_the_run():
    scrapes = [0, 5, 10, 15, 20, 25]
    restarted = [(0, 100), (5, 100), (10, 140), (20, 30), (25, 60)]  # 140 -> 30: reset
    res = analysis.counter_delta([_series(restarted, scrapes)], t0=7, t1=21)
    assert res.value is None and "reset" in res.reason
    # A series that vanished (the process restarted, the route not called again yet) too.
    vanished = [(0, 100), (5, 100), (10, 140)]
    res = analysis.counter_delta([_series(vanished, scrapes)], t0=7, t1=21)
    assert res.value is None and "reset" in res.reason


def test_counter_delta_refuses_a_scrape_after_the_next_load():
    samples = [(0, 0), (10, 50), (25, 999)]
    res = analysis.counter_delta([_series(samples)], t0=1, t1=21, t_next=22)
    assert res.value is None and "no scrape" in res.reason


def test_window_rate():
    samples = [(0, 0), (5, 100), (10, 200), (15, 300), (20, 400)]
    assert analysis.window_rate([_series(samples)], 4, 16) == pytest.approx(20.0)
    assert analysis.window_rate([_series(samples)], 4, 9) is None  # one scrape inside
    assert analysis.window_rate([_series(samples)], 4, 40) is None  # scrapes span < half
    # A series absent in the first scrape of the window counts from 0 there.
    born = _series([(10, 40), (15, 100)], [5, 10, 15])
    assert analysis.window_rate([born], 4, 16) == pytest.approx(10.0)


# ------------------------------------------------------------------ load generator


def test_loadgen_bound_by_cpu():
    bound, reasons = analysis.loadgen_verdict(95.0, False, 900, 1000, 90, 100)
    assert bound and any("95 %" in r for r in reasons)
    bound, _ = analysis.loadgen_verdict(40.0, True, 900, None, None, 100)
    assert bound


def test_loadgen_bound_by_shortfall_while_busy():
    # 600/s of a 1000/s bound, Locust at 80 %, and only 60 of 100 users waiting on the server.
    bound, reasons = analysis.loadgen_verdict(80.0, False, 600, 1000, 60, 100)
    assert bound and "60 %" in reasons[0]


def test_server_bound_step_is_not_blamed_on_the_load_generator():
    # WSGI io: 20/s with 100 users all waiting on the server, Locust nearly idle.
    bound, reasons = analysis.loadgen_verdict(5.0, False, 19.8, 20.0, 99.0, 100)
    assert not bound and reasons == []
    # Short of the bound, Locust busy, but every user is waiting on the server: server-bound.
    bound, _ = analysis.loadgen_verdict(80.0, False, 600, 1000, 99, 100)
    assert not bound


def test_host_saturation_is_marked():
    bound, reasons = analysis.loadgen_verdict(50.0, False, 2000, None, None, 50, 98.0)
    assert bound and reasons[0].startswith("host CPU")
    assert analysis.short_reason(reasons[0]) == "host CPU 98 % busy"


# ------------------------------------------------------------------ findings


def _step(scenario, target, level, rps, avg_ms, p95_ms, ideal=None, bound=False, model="closed"):
    figures = {
        "fail_pct": 0.0,
        "rps": rps,
        "avg_ms": avg_ms,
        "p50_ms": avg_ms,
        "p95_ms": p95_ms,
        "p99_ms": p95_ms,
        "max_ms": p95_ms,
        "capacity": 2 if target == "wsgi" else None,
        "ideal_rps": ideal,
        "pct_of_ideal": analysis.percent_of(rps, ideal),
        "gap_pct": analysis.gap_pct(rps, ideal),
        "in_flight": None,
    }
    return Step(
        scenario, target, None if model == "open" else level, 1, 0.0, 3.0, 13.0, 10.0,
        f"GET /{scenario}", 100, 0, **figures,
        loadgen={"cpu_mean": 95.0 if bound else 10.0, "host_cpu_mean": 50.0},
        loadgen_bound=bound,
        loadgen_reasons=["Locust used 95 % of a core"] if bound else [],
        entries={}, errors=[], csv={},
        offered_rps=level if model == "open" else None, model=model,
    )  # fmt: skip


def _meta(model="closed", warmup_s=3.0):
    return Meta(
        started_at="2025-01-01T00:00:00+00:00",
        options={"warmup_s": warmup_s, "measure_s": 10.0, "profile": "default", "model": model},
        scenario_settings=ScenarioSettings(),
        services={},
        capacity={"wsgi": 2, "asgi": None},
        cpu_count=2,
        load_generator="one local Locust process",
        versions={},
        scrape_interval_s=5.0,
        planned_s=60.0,
        run_dir="r",
    )


def _block(target, steps, started, completed, server):
    block = Block("io", target, "flask" if target == "wsgi" else "fastapi", "/io", t0=0.0)
    block.client = ClientCounts(started, completed, 0)
    block.crosscheck = analysis.crosscheck(started, completed, server)
    block.steps = steps
    return block


def _run():
    wsgi, asgi = [], []
    for users in (10, 25, 50, 100):
        wsgi.append(_step("io", "wsgi", users, 19.8, users * 50.5, users * 52, 20.0))
        asgi_rps = 99.0 * users / 10 if users < 100 else 700.0
        asgi.append(
            _step("io", "asgi", users, asgi_rps, 101, 110, users * 10.0, bound=users == 100)
        )
    return Run(
        complete=True,
        meta=_meta(),
        blocks=[_block("wsgi", wsgi, 900, 880, 885), _block("asgi", asgi, 9000, 8950, 8990)],
        not_applicable=[NotApplicable("ws_echo", "wsgi", "ASGI only")],
    )


def _open_run():
    """Offered 30/s of 100 ms I/O: WSGI (20/s capacity) falls behind, ASGI keeps up."""
    wsgi = _step("io", "wsgi", 30.0, 19.5, 1100, 1700, 20.0, model="open")
    wsgi.sent, wsgi.unanswered = 119, 54
    wsgi.timeline = [TimelineBin(t, 10, 400 + 300 * t, 500 + 300 * t) for t in (1, 2, 3, 4)]
    asgi = _step("io", "asgi", 30.0, 30.0, 101, 110, 30.0, model="open")
    asgi.sent, asgi.unanswered = 120, 3
    asgi.timeline = [TimelineBin(t, 30, 102, 110) for t in (1, 2, 3, 4)]
    return Run(
        complete=True,
        meta=_meta("open"),
        blocks=[_block("wsgi", [wsgi], 200, 147, 165), _block("asgi", [asgi], 201, 198, 201)],
        not_applicable=[],
    )


def _text(run):
    return "\n".join(prose.describe_all(findings.findings(run)))


def test_findings_are_computed_from_the_numbers():
    run = _run()
    found = findings.findings(run)
    assert all(is_dataclass(f) for f in found)  # data; the words are the report's
    text = _text(run)
    assert "io/WSGI: throughput stops following the users already at the lowest level" in text
    assert "io/WSGI vs Little's law (capacity 2): 10 users 19.8/s = 99 % of 20.0/s" in text
    # 100 users on 2 workers: W = 100 x 0.1 / 2 = 5 s; measured 5.05 s
    assert "predicts a mean latency of 5.00 s" in text and "measured 5.05 s" in text
    assert "io/ASGI: throughput stops following the users between 50 users and 100 users" in text
    assert "io: ASGI/WSGI throughput ratio 10 users x5.00" in text
    assert "1 of 8 steps were limited by the load generator" in text and "io/asgi@100" in text
    assert "2 of 2 runs within tolerance" in text
    assert "largest count outside [completed, started]: 0" in text
    # Changing a number changes the finding (nothing canned).
    run.blocks[0].steps[0].rps = 10.0
    assert "10 users 10.0/s = 50 % of 20.0/s" in _text(run)


def test_findings_flag_short_warmup_against_queueing_time():
    run = _run()
    run.meta.options["warmup_s"] = 1.0
    assert "not at steady state" in _text(run)


def test_open_model_findings_tell_falling_behind_from_keeping_up():
    run = _open_run()
    keep_up = {f.target: f for f in findings.findings(run) if isinstance(f, findings.OpenKeepUp)}
    assert keep_up["wsgi"].keeps_up is False and keep_up["asgi"].keeps_up is True
    assert keep_up["wsgi"].first_p50_ms < keep_up["wsgi"].last_p50_ms
    text = _text(run)
    assert "io/WSGI open model, 30.0/s offered: answered 19.5/s: it falls behind" in text
    assert "54 of the 119 requests" in text
    assert "io/ASGI open model, 30.0/s offered: answered 30.0/s: it keeps up" in text


# ------------------------------------------------------------------ rendering


def test_reports_render(tmp_path):
    run = _run()
    run.findings = prose.describe_all(findings.findings(run))
    paths = report.write_reports(tmp_path, run)
    md = paths["markdown"].read_text()
    page = paths["html"].read_text()
    assert "## Findings" in md and "Little's law" in md and "plots/io.png" in md
    assert "LOAD-GENERATOR BOUND" in md and "not applicable" in md
    assert "Open model against closed loop" not in md
    assert page.count("data:image/png;base64,") == 1  # one scenario -> one embedded plot
    assert (tmp_path / "plots" / "io.png").read_bytes()[:4] == b"\x89PNG"
    summary = report.terminal_summary(run)
    assert "io" in summary and "Findings:" in summary


def test_open_model_report_explains_the_difference_with_a_plot(tmp_path):
    run = _open_run()
    run.findings = prose.describe_all(findings.findings(run))
    md = report.write_reports(tmp_path, run)["markdown"].read_text()
    assert "## Open model against closed loop" in md and "coordinated omission" in md
    assert "plots/io.png" in md
    assert (tmp_path / "plots" / "io.png").read_bytes()[:4] == b"\x89PNG"
    assert "| io | wsgi | 30.0/s |" in md and "54 of 119 sent unanswered" in md


# ------------------------------------------------------------------ options


def test_default_and_quick_profiles_fit_their_time_budget():
    default = resolved([])
    assert default.profile == "default" and default.url == "http://127.0.0.1:8080"
    assert default.prometheus_url == "http://127.0.0.1:9090"
    assert default.users["io"] == (10, 25, 50, 100)
    assert [t.name for t in default.targets] == ["wsgi", "asgi"]
    # 6 minutes for the default, 90 s for quick, including pauses and report (~25 s margin).
    assert default.estimated_seconds() <= 360 - 25
    assert len(default.steps()) == 22
    # The same with every variant running: the default profile still loads the two services.
    assert resolved([], selection="all").estimated_seconds() == default.estimated_seconds()
    quick = resolved(["--profile", "quick"])
    assert quick.estimated_seconds() <= 90 - 15
    assert set(PROFILES) == {"default", "quick", "matrix"}


def test_steps_alternate_targets_and_skip_websockets_on_wsgi():
    opts = resolved(["--scenarios", "io,ws_echo", "--users", "io=5,10;ws_echo=3"])
    assert names(opts.steps()) == [
        ("io", "wsgi", 5),
        ("io", "wsgi", 10),
        ("io", "asgi", 5),
        ("io", "asgi", 10),
        ("ws_echo", "asgi", 3),
    ]
    assert [(na.scenario, na.target) for na in opts.not_applicable()] == [("ws_echo", "wsgi")]
    assert "flask has no WebSockets" in opts.not_applicable()[0].reason


def test_environment_variables_and_flag_precedence():
    env = {"BENCH_PROFILE": "quick", "BENCH_USERS": "3,1", "BENCH_DURATION": "4"}
    opts = parse([], environ=env)
    assert opts.profile == "quick" and opts.users["io"] == (1, 3) and opts.measure_s == 4
    opts = parse(["--duration", "6", "--targets", "asgi"], environ=env)
    assert opts.measure_s == 6 and opts.requested == ("asgi",)
    assert parse(["--prometheus-url", "none"], environ={}).prometheus_url is None


def test_open_model_options():
    opts = resolved(["--model", "open", "--rates", "io=10,30", "--scenarios", "io"])
    assert opts.model == "open" and opts.levels("io") == (10.0, 30.0)
    assert names(opts.steps()) == [("io", "wsgi", 10.0), ("io", "wsgi", 30.0),
                                   ("io", "asgi", 10.0), ("io", "asgi", 30.0)]  # fmt: skip
    env = {"BENCH_MODEL": "open", "BENCH_RATES": "25", "BENCH_PROFILE": "quick"}
    opts = parse([], environ=env)
    # The profile's scenarios that have an open variant; one rate list for every one of them.
    assert opts.scenarios == ("io", "hello") and opts.rates == {"io": (25.0,), "hello": (25.0,)}
    assert parse(["--model", "closed"], environ={}).model == "closed"


def test_bench_defaults_follow_the_running_stack(tmp_path):
    # The stack `make up` started: its profile, offset and port overrides (stackctl's settings).
    # Its own state folder, so a stack running in this checkout changes nothing here.
    env = {"STACK_PORT_OFFSET": "500", "STATE_DIR": str(tmp_path)}
    opts = parse([], environ=env)
    assert opts.url == "http://127.0.0.1:8580" and opts.prometheus_url == "http://127.0.0.1:9590"
    assert opts.metrics_bind == "127.0.0.1:10146"
    assert opts.targets_dir.endswith("prometheus-targets")
    opts = parse(
        [], environ={"STACK_PROFILE": "test", "HTTP_PORT": "9999", "STATE_DIR": str(tmp_path)}
    )
    assert opts.url == "http://127.0.0.1:18080" and opts.metrics_bind == "127.0.0.1:19646"
    assert parse([], environ={"HTTP_PORT": "9999", "STATE_DIR": str(tmp_path)}).url == (
        "http://127.0.0.1:9999"
    )
    explicit = {"PROMETHEUS_TARGETS_DIR": "/elsewhere", "LOCUST_METRICS_BIND": "127.0.0.1:1"}
    opts = parse(["--url", "http://127.0.0.1:1234"], environ=explicit)
    assert (opts.url, opts.targets_dir, opts.metrics_bind) == (
        "http://127.0.0.1:1234", "/elsewhere", "127.0.0.1:1",
    )  # fmt: skip


def test_direct_mode_bypasses_nginx():
    opts = parse(["--direct", "wsgi=http://127.0.0.1:8001,asgi=http://127.0.0.1:8002/"], {})
    # No /variants.json to read: the direct targets are the registry's entries, no prefix.
    wsgi, asgi = resolve(opts, running=()).targets
    assert opts.host(wsgi) == "http://127.0.0.1:8001"
    assert opts.healthz_url(asgi) == "http://127.0.0.1:8002/healthz"
    assert opts.scenario_settings(wsgi).prefix == ""
    assert (wsgi.variant, wsgi.capacity, asgi.capacity) == ("flask", 2, None)
    nginx = resolved([]).targets[0]
    assert resolved([]).scenario_settings(nginx).prefix == "/wsgi"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenarios", "io,nope"], "unknown 'nope'"),
        (["--users", "ten"], "must be integers"),
        (["--users", "0"], "between 1 and 2000"),
        (["--users", "io=5;bogus=3"], "SCENARIO=N"),
        (["--targets", "cgi"], "unknown 'cgi'; running behind the stack: flask, fastapi"),
        (["--profile", "long"], "unknown 'long'"),
        (["--duration", "soon"], "expected seconds"),
        (["--url", "127.0.0.1:8080"], "expected an http:// URL"),
        (["--scenarios", "ws_echo", "--targets", "wsgi"], "not applicable"),
        (["--io-ms", "20000"], "between 0 and 10000"),
        (["--io-ms", "-1"], "between 0 and 10000"),
        (["--frobnicate"], "unrecognized"),
        (["--model", "poisson"], "unknown 'poisson'"),
        (["--rates", "io=10"], "need --model open"),
        (["--model", "open", "--users", "10"], "has no users"),
        (["--model", "open", "--scenarios", "io,stream"], "stream cannot run in the open"),
        (["--model", "open", "--rates", "io=0"], "above 0"),
        (["--model", "open", "--rates", "io=fast"], "must be numbers"),
        (["--model", "open", "--rates", "io=10,10"], "repeat"),
        (["--model", "open", "--rates", "ws_echo=10"], "SCENARIO=R"),
        (["--model", "open", "--rates", "io=99999"], "at most"),
    ],
)
def test_bad_input_is_a_usage_error(argv, message):
    with pytest.raises(UsageError, match=message):
        resolved(argv)


def test_entry_point_exits_2_on_bad_input_and_unreachable_stack(tmp_path):
    for argv, text in (
        (["--users", "x"], "must be integers"),
        (["--model", "open", "--scenarios", "ws_echo"], "cannot run in the open model"),
        (["--url", "http://127.0.0.1:1", "--prometheus-url", "none"], "not reachable"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "loadtests.bench", *argv, "--out", str(tmp_path / "r")],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert text in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing written


# ------------------------------------------------------------------ scenario settings, exporter


def test_scenario_settings_bounds_and_env():
    assert ScenarioSettings().prefix == "/asgi"
    with pytest.raises(ValueError):
        ScenarioSettings(io_ms=20000)
    with pytest.raises(ValueError):
        ScenarioSettings(stream_events=100, stream_interval_ms=1000)
    with pytest.raises(ValueError):
        ScenarioSettings(target="cgi")
    s = ScenarioSettings.from_env({"LOCUST_TARGET": "wsgi", "LOCUST_IO_MS": "250"})
    assert (s.target, s.io_ms, s.prefix) == ("wsgi", 250, "/wsgi")


def test_targets_and_urls():
    assert prefix("wsgi") == "/wsgi"
    assert not applicable("ws_chat", "wsgi") and applicable("ws_chat", "asgi")
    assert applicable("io", "wsgi")
    assert ws_url("http://127.0.0.1:8080/", "/asgi/ws/echo") == "ws://127.0.0.1:8080/asgi/ws/echo"
    assert ws_url("https://h", "/x") == "wss://h/x"


def test_step_shape_parsing():
    assert parse_steps("10, 25,50") == [10, 25, 50]
    with pytest.raises(ValueError):
        parse_steps("10,x")
    with pytest.raises(ValueError):
        parse_steps("0")


def test_exporter_counters_survive_stats_resets():
    mono = _Monotonic()
    assert mono("k", 10) == 10
    assert mono("k", 25) == 25
    assert mono("k", 3) == 28  # Locust reset its stats: keep counting from 25
    assert mono("k", 7) == 32
    assert parse_bind("127.0.0.1:9646") == ("127.0.0.1", 9646)
    assert scrape_target("127.0.0.1:19646") == "127.0.0.1:19646"
    with pytest.raises(ValueError):
        parse_bind("9646")
    assert not math.isnan(analysis.CROSSCHECK_REL_TOL)


def test_bench_and_scenarios_share_the_services_bounds_and_defaults():
    # One copy: the bounds are gateway_common.validation's, the defaults ScenarioSettings'.
    from gateway_common import validation
    from loadtests.bench.options import parse
    from loadtests.settings import BOUNDS, ScenarioSettings

    assert BOUNDS["io_ms"] == (validation.IO_MS_MIN, validation.IO_MS_MAX)
    assert BOUNDS["cpu_n"] == (validation.CPU_N_MIN, validation.CPU_N_MAX)
    options = parse([], environ={})
    assert (options.io_ms, options.cpu_n) == (ScenarioSettings.io_ms, ScenarioSettings.cpu_n)
    assert parse(["--io-ms", "0"], environ={}).io_ms == 0  # the services accept ms=0


def test_results_json_keeps_its_keys():
    # results.json schema 2: schema 1's keys, plus `model` on every step and the open model's
    # figures on open steps only; optional figures only where they apply, server figures only
    # after the cross-check, steps listed flat beside their blocks.
    step = _step("io", "wsgi", 10, 10.0, 100, 110)
    keys = set(step.to_dict())
    assert step.to_dict()["model"] == "closed" and step.to_dict()["users"] == 10
    assert not keys & {"ttfe_p50_ms", "server_rps", "offered_rps", "sent", "timeline", "poll"}
    step.crosschecked = True
    assert step.to_dict()["server_rps"] is None
    block = _block("wsgi", [step], 5, 5, 5)
    doc = Run(complete=True, meta=_meta(), blocks=[block], not_applicable=[]).to_dict()
    assert doc["schema"] == 3 and doc["steps"] == [step.to_dict()]
    assert set(doc) == {"schema", "complete", "meta", "steps", "blocks", "not_applicable",
                        "findings"}  # fmt: skip
    assert doc["meta"]["scenario_settings"]["io_ms"] == 100
    assert "target" not in doc["meta"]["scenario_settings"]
    assert set(doc["blocks"][0]) == {
        "scenario", "target", "service", "route", "t0", "t1", "client", "crosscheck",
    }  # fmt: skip
    assert doc["blocks"][0]["client"] == {"started": 5, "completed": 5, "gateway_error": 0}
    assert doc["blocks"][0]["crosscheck"]["ok"] is True
    opened = _open_run().to_dict()["steps"][0]
    assert opened["model"] == "open" and opened["users"] is None
    assert opened["offered_rps"] == 30.0 and opened["rps"] == 19.5 and opened["p99_ms"]
    assert opened["sent"] == 119 and opened["unanswered"] == 54
    assert opened["timeline"][0] == {"t_s": 1, "answered": 10, "p50_ms": 700, "max_ms": 800}
    json.dumps(opened)


def test_stream_duration_is_computed_once():
    from loadtests.settings import ScenarioSettings

    assert ScenarioSettings(stream_events=10, stream_interval_ms=100).stream_s == 0.9
    assert ScenarioSettings(stream_events=1, stream_interval_ms=100).stream_s == 0.0
