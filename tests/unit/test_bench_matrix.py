"""Unit tests of the bench across server variants: target names, the matrix profile's plan, the
poll scenario's figures, and the matrix table, findings and plots from constructed results.

No Locust here (it monkey-patches the standard library): the modules tested are pure.
"""

from __future__ import annotations

import json

import pytest

from gateway_common import variants
from gateway_common.chat_bus import ChatMessage
from loadtests import poll_messages
from loadtests.bench import findings, matrix, matrix_report, poll, prose, report
from loadtests.bench.options import (
    MIN_MEASURE_S,
    PROFILES,
    RUN_OVERHEAD_S,
    UsageError,
    parse,
    resolve,
)
from loadtests.bench.results import Meta, NotApplicable, PollFigures, Run, Step
from loadtests.bench.targets import TargetError, running_from_document
from loadtests.settings import ScenarioSettings
from stackctl.routes import variants_document

MATRIX_BUDGET_S = 15 * 60


def running(selection: str = "") -> tuple:
    """What a stack started with VARIANTS=<selection> lists in its /variants.json."""
    doc = variants_document(variants.parse_selection(selection), {})
    return running_from_document(json.loads(doc))


def resolved(argv: list[str], selection: str = "", environ: dict | None = None, absent=()):
    return resolve(parse(argv, environ=environ or {}), running(selection), absent)


def target_names(opts) -> list[str]:
    return [t.name for t in opts.targets]


# ------------------------------------------------------------------ targets


def test_variant_names_aliases_and_all():
    opts = resolved(["--targets", "flask-gthread,wsgi"], "flask-gthread,flask-gevent")
    gthread, wsgi = opts.targets
    assert (gthread.name, gthread.prefix, gthread.capacity) == (
        "flask-gthread",
        "/flask-gthread",
        16,
    )
    # The alias keeps its name (results read as before) and is the flask variant.
    assert (wsgi.name, wsgi.variant, wsgi.prefix, wsgi.capacity) == ("wsgi", "flask", "/wsgi", 2)
    every = resolved(["--targets", "all"], "flask-gthread,flask-gevent")
    assert target_names(every) == ["flask", "fastapi", "flask-gthread", "flask-gevent"]
    assert every.targets[3].capacity == variants.GEVENT_WORKER_CONNECTIONS * 2
    # A variant named twice (alias and name, or by `all`) runs once, under the first name.
    assert target_names(resolved(["--targets", "asgi,fastapi,all"])) == ["asgi", "flask"]
    assert target_names(resolved(["--targets", "WSGI"])) == ["wsgi"]


def test_prefix_and_capacity_come_from_the_stacks_variants_json():
    doc = json.loads(variants_document(variants.parse_selection(""), {}))
    doc["variants"][0] |= {"prefix": "/elsewhere/", "capacity": 6, "workers": 6}
    opts = resolve(parse(["--targets", "wsgi"], environ={}), running_from_document(doc))
    (target,) = opts.targets
    assert target.prefix == "/elsewhere" and target.capacity == 6
    assert opts.scenario_settings(target).prefix == "/elsewhere"
    assert opts.healthz_url(target) == "http://127.0.0.1:8080/elsewhere/healthz"


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ("cgi", "unknown 'cgi'; running behind the stack: flask, fastapi, flask-gevent; known:"),
        ("flask-gthread", "'flask-gthread' is not running behind the stack; running: flask, "
         "fastapi, flask-gevent (start it with VARIANTS=flask-gthread make up"),
        ("tornado,wsgi", "'tornado' is not running"),
        (",", "nothing given"),
    ],
)  # fmt: skip
def test_unknown_or_stopped_targets_are_errors_that_list_what_runs(targets, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        resolved(["--targets", targets], "flask-gevent")


def test_all_with_direct_and_a_malformed_variants_json_are_errors():
    with pytest.raises(UsageError, match="--targets all reads what runs behind nginx"):
        parse(["--targets", "all", "--direct", "wsgi=http://127.0.0.1:1"], environ={})
    for doc in ({}, {"variants": "flask"}, {"variants": [{"name": "flask"}]}):
        with pytest.raises(TargetError, match="/variants.json"):
            running_from_document(doc)


def test_cells_a_variant_does_not_serve_are_not_applicable():
    absent = [NotApplicable("poll", "flask-gevent", "flask-gevent has no /poll (HTTP 404)")]
    opts = resolved(
        ["--targets", "all", "--scenarios", "poll,ws_echo", "--users", "5"],
        "flask-gevent,tornado",
        absent=absent,
    )
    cells = {(s, t.name) for s, t, _ in opts.steps()}
    assert ("poll", "flask-gevent") not in cells and ("poll", "tornado") in cells
    assert {t for s, t in cells if s == "ws_echo"} == {"fastapi", "tornado"}
    reasons = {(na.scenario, na.target): na.reason for na in opts.not_applicable()}
    assert reasons == {
        ("poll", "flask-gevent"): "flask-gevent has no /poll (HTTP 404)",
        ("ws_echo", "flask"): "flask has no WebSockets (/variants.json)",
        ("ws_echo", "flask-gevent"): "flask-gevent has no WebSockets (/variants.json)",
    }
    with pytest.raises(UsageError, match="nothing to run: .*ws_echo on flask-gevent"):
        resolved(["--targets", "flask-gevent", "--scenarios", "ws_echo"], "flask-gevent")


# ------------------------------------------------------------------ the matrix profile's plan


def test_matrix_profile_fits_fifteen_minutes_with_every_variant_running():
    opts = resolved([], environ={"BENCH_PROFILE": "matrix"}, selection="all")
    assert opts.profile == "matrix" and target_names(opts) == [v.name for v in variants.VARIANTS]
    assert opts.scenarios == ("io", "hello", "stream", "poll", "ws_echo")
    with_ws = sum(v.websockets for v in variants.VARIANTS)
    levels = sum(len(opts.users[s]) for s in ("io", "hello", "stream", "poll"))
    assert len(opts.steps()) == levels * len(variants.VARIANTS) + with_ws
    # Every step, pause, poll drain and the run's own overhead within the budget ...
    assert opts.estimated_seconds() + RUN_OVERHEAD_S <= MATRIX_BUDGET_S
    assert not opts.over_budget()
    # ... with windows still long enough to measure.
    assert opts.measure_s >= MIN_MEASURE_S and opts.warmup_s >= 2


def test_matrix_windows_grow_when_fewer_variants_run_and_obey_an_explicit_duration():
    few = resolved(["--profile", "matrix"], "flask-gthread,flask-gevent")
    assert target_names(few) == ["flask", "fastapi", "flask-gthread", "flask-gevent"]
    assert few.measure_s == PROFILES["matrix"].measure_s  # the longest window fits
    assert few.estimated_seconds() + RUN_OVERHEAD_S <= MATRIX_BUDGET_S
    every = resolved(["--profile", "matrix"], "all")
    assert every.measure_s < few.measure_s
    # Cells found absent make room: the windows of what is left grow.
    absent = [NotApplicable("poll", t.name, "no /poll") for t in every.targets]
    assert resolved(["--profile", "matrix"], "all", absent=absent).measure_s > every.measure_s
    # --duration is the user's: kept, and the plan says when it exceeds the budget.
    long = resolved(["--profile", "matrix", "--duration", "30"], "all")
    assert long.measure_s == 30 and long.over_budget()
    # The default profile is unchanged: the two services, its own windows, no budget.
    default = resolved([], "all")
    assert target_names(default) == ["wsgi", "asgi"] and default.measure_s == 10
    assert not default.over_budget()


def test_poll_drain_is_planned_only_where_pollers_outnumber_a_bounded_capacity():
    opts = resolved(["--profile", "matrix", "--poll-timeout-ms", "1000"], "flask-gthread")
    by_name = {t.name: t for t in opts.targets}
    # 20 pollers, capacity 2: 18 queued, each at worst a 1 s timeout, 2 at a time.
    assert opts.drain_s("poll", by_name["flask"]) == pytest.approx(18 * 1.0 / 2)
    assert opts.drain_s("poll", by_name["flask-gthread"]) == pytest.approx(4 * 1.0 / 16)
    assert opts.drain_s("poll", by_name["fastapi"]) == 0
    assert opts.drain_s("io", by_name["flask"]) == 0


def test_poll_options_are_checked():
    opts = resolved(["--poll-rate", "4", "--poll-timeout-ms", "500"])
    settings = opts.scenario_settings(opts.targets[0])
    assert (settings.poll_rate, settings.poll_timeout_ms, settings.poll_wait_s) == (4, 500, 0.25)
    for argv, message in (
        (["--poll-rate", "0"], "between 0.1 and 100 messages/s"),
        (["--poll-timeout-ms", "60000"], "between 0 and 30000"),
        (["--poll-rate", "often"], "expected messages/s"),
    ):
        with pytest.raises(UsageError, match=message):
            parse(argv, environ={})


# ------------------------------------------------------------------ poll figures


def test_a_poll_answer_is_read_from_the_chat_message():
    text = poll_messages.message_text(7)
    message = ChatMessage("r", "member", text, 100.5)
    assert poll_messages.read_answer(message.encode()) == poll_messages.Delivery(7, 100.5)
    other = [ChatMessage("r", "m", t, 1.0).encode() for t in ("hi", '{"seq": "7"}', "{}")]
    for body in ("", "[]", '{"text": "{\\"seq\\": 7}"}', "not json", *other):
        assert poll_messages.read_answer(body) is None, body


def test_poll_window_figures():
    published = [(1, 9.0), (2, 10.0), (3, 10.5), (4, 11.0), (5, 11.9)]
    answers = [
        (9.1, 1, 100.0),  # before the window
        (10.01, 2, 10.0),
        (10.02, 2, 20.0),
        (10.51, 3, 10.0),
        (10.6, None, None),  # a 204
        (11.02, 4, 20.0),
        (11.03, 4, 30.0),
        (11.04, 4, 40.0),
        (12.5, 5, 600.0),  # after it
    ]
    p = poll.window_figures(published, answers, 10.0, 12.0)
    assert (p.published, p.answered, p.with_message, p.timed_out) == (4, 7, 6, 1)
    assert p.message_share == pytest.approx(6 / 7)
    assert (p.delivery_p50_ms, p.delivery_p95_ms) == (20.0, 40.0)
    # Messages 2, 3, 4 (5 is too close to the end to count): 2, 1 and 3 receivers.
    assert (p.held_mean, p.held_max) == (2.0, 3)
    empty = poll.window_figures([], [], 0.0, 1.0)
    assert empty.message_share is None and empty.held_mean is None


# ------------------------------------------------------------------ table, findings, plots

CAPACITY = {"flask": 2, "flask-gthread": 16, "flask-gevent": 2000, "fastapi": None}
INFO = {
    "flask": ("wsgi", "sync"),
    "flask-gthread": ("wsgi", "gthread"),
    "flask-gevent": ("wsgi", "gevent"),
    "fastapi": ("asgi", "uvicorn"),
}


def _step(scenario, target, users, rps, p95_ms, ideal=None, polls=None, bound=False) -> Step:
    return Step(
        scenario, target, users, users, 0.0, 3.0, 13.0, 10.0, f"GET /{scenario}",
        int(rps * 10), 0, 0.0, rps, p95_ms / 2, p95_ms / 2, p95_ms, p95_ms, p95_ms,
        CAPACITY[target], ideal,
        None if ideal is None else 100 * rps / ideal, None, users,
        loadgen={"cpu_mean": 20.0, "host_cpu_mean": 60.0}, loadgen_bound=bound,
        loadgen_reasons=["host CPU 97 % busy: they compete"] if bound else [],
        entries={"POST /poll [publish]": {"p95_ms": 5.0}} if polls else {}, errors=[], csv={},
        poll=polls,
    )  # fmt: skip


def _held(mean: float, peak: int, share: float = 1.0) -> PollFigures:
    return PollFigures(20, 100, int(100 * share), 100 - int(100 * share), 3.0, 9.0, mean, peak)


def _matrix_run() -> Run:
    io = {  # 100 ms waits: bound min(users, capacity) / 0.1 s
        "flask": (19.6, 19.8),
        "flask-gthread": (97.0, 158.0),
        "flask-gevent": (98.0, 410.0),
        "fastapi": (98.5, 490.0),
    }
    steps = []
    for target, (low, high) in io.items():
        for users, rps in ((10, low), (50, high)):
            cap = CAPACITY[target]
            bound = (users if cap is None else min(users, cap)) / 0.1
            steps.append(_step("io", target, users, rps, 5000 / rps, bound))
        steps.append(_step("hello", target, 20, 1000.0, 30.0))
    held = {"flask": _held(1.0, 1, 0.2), "flask-gthread": _held(15.5, 16),
            "flask-gevent": _held(19.5, 20), "fastapi": _held(19.8, 20)}  # fmt: skip
    for target, figures in held.items():
        cap = CAPACITY[target]
        bound = (20 if cap is None else min(20, cap)) / 0.5
        rps = figures.held_mean * 2
        steps.append(_step("poll", target, 20, rps, 900.0, bound, polls=figures))
    steps.append(_step("ws_echo", "fastapi", 20, 200.0, 2.0, 200.0))
    meta = Meta(
        started_at="2025-01-01T00:00:00+00:00",
        options={"profile": "matrix", "model": "closed", "warmup_s": 3.0, "measure_s": 6.0,
                 "targets": list(CAPACITY), "scenarios": ["io", "hello", "poll", "ws_echo"],
                 "users": {"io": [10, 50], "hello": [20], "poll": [20], "ws_echo": [20]}},
        scenario_settings=ScenarioSettings(),
        services={},
        capacity=dict(CAPACITY),
        cpu_count=2, load_generator="one local Locust process", versions={},
        scrape_interval_s=5.0, planned_s=600.0, run_dir="r",
        targets={t: {"name": t, "variant": t, "prefix": f"/{t}", "interface": i,
                     "framework": t.split("-")[0], "server": "gunicorn", "worker_class": w,
                     "workers": 2, "threads": 1, "capacity": CAPACITY[t], "websockets": i == "asgi"}
                 for t, (i, w) in INFO.items()},
    )  # fmt: skip
    from loadtests.bench.results import Block

    block = Block("io", "flask", "flask", "/io", 0.0)
    block.steps = steps
    na = [NotApplicable("ws_echo", t, f"{t} has no WebSockets (/variants.json)")
          for t in ("flask", "flask-gthread", "flask-gevent")]  # fmt: skip
    return Run(complete=True, meta=meta, blocks=[block], not_applicable=na)


def test_matrix_table_one_row_per_variant_one_column_per_scenario_and_load():
    run = _matrix_run()
    assert matrix.is_matrix(run)
    headers, rows = matrix_report.matrix_table(run)
    assert headers == ["variant", "server", "capacity", "io @10u", "io @50u", "hello @20u",
                       "poll @20u", "ws_echo @20u"]  # fmt: skip
    by_name = {r[0]: r for r in rows}
    assert list(by_name) == ["flask", "flask-gthread", "flask-gevent", "fastapi"]
    assert by_name["flask"][2] == "2" and by_name["fastapi"][2] == "unbounded"
    # io at 50: flask's bound is 2 / 0.1 s = 20/s; hello has no bound, so no %.
    assert by_name["flask"][4] == "19.8/s · p95 253 ms · 99 %"
    assert by_name["flask-gthread"][4] == "158/s · p95 32 ms · 99 %"
    assert by_name["fastapi"][5] == "1000/s · p95 30 ms"
    assert by_name["flask"][7] == "n/a" and by_name["fastapi"][7] == "200/s · p95 2 ms · 100 %"
    # Changing a number changes the cell (nothing canned).
    run.steps[1].rps = 10.0
    assert matrix_report.matrix_table(run)[1][0][4].startswith("10.0/s")


def test_poll_table_shows_what_each_message_found_waiting():
    headers, rows = matrix_report.poll_table(_matrix_run())
    flask = dict(zip(headers, rows[0], strict=True))
    assert flask["variant"] == "flask" and flask["capacity"] == "2"
    assert flask["held per message (max)"] == "1.0 (1)" and flask["with message"] == "20 %"
    assert flask["204"] == "80" and flask["% of bound"] == "50 %"  # 2.0/s of 2 / 0.5 s
    assert flask["delivery p95"] == "9 ms" and flask["publish p95"] == "5 ms"


def test_matrix_findings_are_computed_from_the_numbers():
    run = _matrix_run()
    found = findings.findings(run)
    kinds = {type(f) for f in found}
    assert {findings.BoundReach, findings.WorkerModels, findings.PollHolding} <= kinds
    assert findings.Scaling not in kinds  # per-target sentences stay out of a matrix
    text = "\n".join(prose.describe_all(found))
    assert "io at 50 users: 4 variants reached the bound (>= 80 %)" in text
    assert "flask 99 %, flask-gthread 99 %, flask-gevent 82 %, fastapi 98 %" in text
    # WSGI worker models by capacity, ratios to the sync one; fastapi (ASGI) is not among them.
    models = next(f for f in found if isinstance(f, findings.WorkerModels))
    assert [p.target for p in models.points] == ["flask", "flask-gthread", "flask-gevent"]
    assert "flask-gthread (gthread, capacity 16) 158/s, p95 32 ms, x8.0" in text
    assert "flask-gevent (gevent, capacity 2000) 410/s, p95 12 ms, x20.7" in text
    # poll: 20 % of flask's polls got a message (1 held of capacity 2); none over capacity.
    assert "poll at 20 pollers" in text and "flask held 1.0 (max 1) of capacity 2" in text
    assert "No bounded variant held more waiting polls than its capacity" in text
    assert "outnumbered it (flask, flask-gthread)" in text
    # flask answered 2.0/s of its 2 / 0.5 s: short of the bound; the others reached it.
    assert "poll at 20 users: 3 variants reached the bound" in text
    assert "below it: flask 50 %" in text
    # A bounded variant over its capacity is reported, not hidden.
    flask_poll = next(s for s in run.steps if (s.scenario, s.target) == ("poll", "flask"))
    flask_poll.poll = _held(3.0, 3)
    holding = next(f for f in findings.findings(run) if isinstance(f, findings.PollHolding))
    assert holding.over_capacity == ("flask",)
    assert "flask held more waiting polls than its capacity" in prose.describe(holding)


def test_matrix_report_renders_with_a_plot_per_scenario(tmp_path):
    run = _matrix_run()
    run.findings = prose.describe_all(findings.findings(run))
    paths = report.write_reports(tmp_path, run)
    md = paths["markdown"].read_text()
    assert "# gateway-lab bench: server variants under concurrency" in md
    assert "## The matrix: variants x scenarios" in md and "### Long polling" in md
    assert "poll: min(pollers, capacity) / min(message interval, timeout)" in md
    assert "hello: no bound applies" in md
    assert "- ws_echo on flask: flask has no WebSockets (/variants.json)" in md
    for scenario in ("io", "hello", "poll", "ws_echo"):
        assert (tmp_path / "plots" / f"{scenario}.png").read_bytes()[:4] == b"\x89PNG"
    assert paths["html"].read_text().count("data:image/png;base64,") == 4
    summary = report.terminal_summary(run)
    assert "Matrix (throughput · % of bound):" in summary and "Long polling:" in summary
    assert "19.8/s · 99 %" in summary


def test_a_two_service_run_keeps_its_report_and_shows_poll_when_run():
    run = _matrix_run()
    keep = {"flask", "fastapi"}
    run.blocks[0].steps = [s for s in run.steps if s.target in keep]
    run.meta.options |= {"profile": "default", "targets": ["flask", "fastapi"]}
    assert not matrix.is_matrix(run)
    text = "\n".join(prose.describe_all(findings.findings(run)))
    assert "io/FLASK vs Little's law (capacity 2)" in text
    assert "poll at 20 pollers" in text
    assert "Long polling:" in report.terminal_summary(run)
