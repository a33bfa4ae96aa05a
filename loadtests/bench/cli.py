"""``python -m loadtests.bench``: run the matrix, cross-check, write reports/<timestamp>/.

Exit codes: 0 done; 2 bad input or the stack/Prometheus not reachable (nothing started,
nothing written); 1 the run failed; 130 interrupted (what was measured is written, marked
incomplete, and ``latest`` is left alone).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from loadtests.bench import numbers
from loadtests.bench.options import (
    PROFILES,
    RUN_OVERHEAD_S,
    BenchOptions,
    UsageError,
    needs_stack_variants,
    parse,
    resolve,
)
from loadtests.bench.results import Block, Meta, Run


def _err(message: str) -> None:
    print(f"bench: error: {message}", file=sys.stderr, flush=True)


def _say(message: str) -> None:
    print(message, flush=True)


def prepare(opts: BenchOptions) -> tuple[BenchOptions, dict[str, dict]]:
    """The targets looked up in the stack's /variants.json, their health, the cells they do not
    serve left out; UsageError when the stack does not answer or a target does not run."""
    from loadtests.bench import probes
    from loadtests.bench.targets import TargetError, fetch_running

    try:
        running = fetch_running(opts.url) if needs_stack_variants(opts) else ()
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    opts = resolve(opts, running)
    health = probes.health(opts)
    absent = probes.absent_routes(opts)
    return (resolve(opts, running, absent) if absent else opts), health


def _new_run_dir(out: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = out / stamp
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = out / f"{stamp}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


def _point_latest(out: Path, run_dir: Path) -> None:
    link = out / "latest"
    tmp = out / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def crosscheck_blocks(prom, blocks: list[Block], t_start: float) -> None:
    """Fill each block's cross-check and each step's server rate from raw scrapes."""
    from loadtests.bench.prom import PrometheusError

    end = time.time()
    cache: dict[tuple[str, bool], list | Exception] = {}
    try:
        scrapes = prom.scrape_times(t_start - 30, end)
    except PrometheusError:
        scrapes = {}
    for block in blocks:
        ws = block.scenario.startswith("ws_")
        if (block.service, ws) not in cache:
            selector = (
                f'websocket_messages_total{{service="{block.service}",direction="in"}}'
                if ws
                else f'http_requests_total{{service="{block.service}"}}'
            )
            try:
                cache[block.service, ws] = prom.raw_samples(selector, t_start - 30, end)
            except PrometheusError as exc:
                cache[block.service, ws] = exc
        _crosscheck_block(block, blocks, cache[block.service, ws], scrapes)


def _crosscheck_block(
    block: Block, blocks: list[Block], data: list | Exception, scrapes: dict
) -> None:
    from loadtests.bench import analysis

    client = block.client
    if isinstance(data, Exception):
        block.crosscheck = analysis.crosscheck(
            client.started, client.completed, None, client.gateway_error
        )
        block.crosscheck_reason = f"Prometheus query failed: {data}"
        return
    matching = [d for d in data if d["labels"].get("route", "").endswith(block.route)]
    block.server_route = ",".join(sorted({d["labels"].get("route", "") for d in matching}))
    series = [
        analysis.CounterSeries(
            tuple(d["samples"]),
            tuple(scrapes.get((d["labels"].get("job"), d["labels"].get("instance")), ())),
        )
        for d in matching
    ]
    # The route's counter must be read before the same route is loaded again.
    later = [
        other.t0
        for other in blocks
        if other is not block
        and (other.service, other.route) == (block.service, block.route)
        and other.t0 >= block.t1
    ]
    delta = analysis.counter_delta(series, block.t0, block.t1, min(later) if later else None)
    block.crosscheck = analysis.crosscheck(
        client.started, client.completed, delta.value, client.gateway_error
    )
    if delta.value is None:
        block.crosscheck_reason = delta.reason
    else:
        block.crosscheck_window = {"before_t": delta.before_t, "after_t": delta.after_t}
    for step in block.steps:
        rate = analysis.window_rate(series, step.t_measure_start, step.t_measure_end)
        step.crosschecked = True
        step.server_rps = rate
        step.server_rps_diff_pct = (
            analysis.gap_pct(step.rps, rate) if rate and step.rps is not None else None
        )


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse(argv)
    except UsageError as exc:
        _err(str(exc))
        return 2

    # Locust (and with it gevent's monkey-patching) only from here on, before urllib/ssl.
    from loadtests.bench import driver

    try:
        opts, health = prepare(opts)
        prom, scrape_s = _connect_prometheus(opts)
        run_dir = _new_run_dir(Path(opts.out))
    except UsageError as exc:
        _err(str(exc))
        return 2
    except OSError as exc:
        _err(f"cannot create a run folder under {opts.out}: {exc}")
        return 2

    t_start = time.time()
    meta = _meta(opts, health, run_dir, scrape_s)
    _say_plan(opts, run_dir)
    drv = driver.Driver(opts, run_dir, progress=_say)
    code = _drive(drv)
    if prom is not None and drv.blocks:
        _wait_for_last_scrape(drv.blocks, scrape_s, interrupted=code == 130)
        crosscheck_blocks(prom, drv.blocks, t_start)
    meta.elapsed_s = time.time() - t_start
    run = Run(
        complete=code == 0, meta=meta, blocks=drv.blocks, not_applicable=opts.not_applicable()
    )
    return _write(run, run_dir, Path(opts.out), code)


def _connect_prometheus(opts: BenchOptions):  # -> (Prometheus | None, scrape interval | None)
    from loadtests.bench.prom import Prometheus, PrometheusError

    if not opts.prometheus_url:
        return None, None
    prom = Prometheus(opts.prometheus_url)
    try:
        prom.ready()
    except PrometheusError as exc:
        raise UsageError(
            f"Prometheus is not reachable ({exc}); pass --prometheus-url, or "
            "--prometheus-url none to skip the client/server cross-check"
        ) from None
    return prom, prom.scrape_interval_s()


def _say_plan(opts: BenchOptions, run_dir: Path) -> None:
    planned = opts.estimated_seconds() + RUN_OVERHEAD_S
    budget = f", budget {numbers.duration(opts.budget_s)}" if opts.budget_s else ""
    _say(
        f"bench: {len(opts.steps())} steps on {len(opts.targets)} targets "
        f"({', '.join(t.name for t in opts.targets)}), {numbers.number(opts.warmup_s)} s warm-up "
        f"+ {numbers.number(opts.measure_s)} s measured each; planned about "
        f"{numbers.duration(planned)} (profile {opts.profile}{budget}) against {opts.url}; "
        f"writing {run_dir}"
    )
    if opts.over_budget():
        _say(
            f"bench: warning: the plan exceeds the profile's budget even at "
            f"{numbers.number(opts.measure_s)} s per window; fewer targets or scenarios fit"
        )
    for na in opts.not_applicable():
        _say(f"bench: {na.scenario} on {na.target}: not applicable ({na.reason})")


def _meta(opts: BenchOptions, health: dict, run_dir: Path, scrape_s: float | None) -> Meta:
    from loadtests.bench import driver

    return Meta(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        options={
            "url": opts.url,
            "direct": opts.direct,
            "prometheus_url": opts.prometheus_url,
            "profile": opts.profile,
            "profile_description": PROFILES[opts.profile].description,
            "model": opts.model,
            "scenarios": list(opts.scenarios),
            "targets": [t.name for t in opts.targets],
            "users": {k: list(v) for k, v in opts.users.items()},
            "rates": {k: list(v) for k, v in opts.rates.items()},
            "warmup_s": opts.warmup_s,
            "measure_s": opts.measure_s,
        },
        scenario_settings=opts.scenario_settings(opts.targets[0]),
        services=health,
        capacity={t.name: t.capacity for t in opts.targets},
        cpu_count=os.cpu_count(),
        load_generator="one local Locust process (gevent), this host",
        versions=driver.versions(),
        scrape_interval_s=scrape_s,
        planned_s=opts.estimated_seconds() + RUN_OVERHEAD_S,
        run_dir=str(run_dir),
        targets={t.name: t.to_dict() for t in opts.targets},
    )


def _drive(drv) -> int:
    """Run every block: 0 done, 130 interrupted, 1 failed (what ran is kept either way)."""
    try:
        drv.run()
    except KeyboardInterrupt:
        _err("interrupted: writing what was measured (marked incomplete)")
        return 130
    except Exception as exc:  # the report of what ran is still worth writing
        _err(f"run failed: {exc!r}")
        return 1
    return 0


def _wait_for_last_scrape(blocks: list[Block], scrape_s: float | None, interrupted: bool) -> None:
    """The last scrape after the last run must exist before the counters are read."""
    wait = (scrape_s or 15) + 1.5 - (time.time() - max(b.t1 for b in blocks))
    if wait > 0 and not interrupted:
        _say(f"bench: waiting {wait:.0f} s for Prometheus's next scrape (cross-check)")
        time.sleep(wait)


def _write(run: Run, run_dir: Path, out: Path, code: int) -> int:
    from loadtests.bench import driver, findings, prose, report

    run.findings = prose.describe_all(findings.findings(run))
    driver.dump_json(run_dir / "results.json", run.to_dict())
    try:
        paths = report.write_reports(run_dir, run)
    except Exception as exc:  # results.json is written; keep it even if plotting fails
        _err(f"report rendering failed: {exc!r} (results.json is complete)")
        return 1
    if run.complete:
        _point_latest(out, run_dir)
    _say("")
    _say(report.terminal_summary(run))
    _say("")
    _say(f"bench: report {paths['html']} (and report.md, results.json, csv/)")
    return code


def run(argv: list[str] | None = None) -> None:
    sys.exit(main(argv))


__all__ = ["BenchOptions", "main", "run"]
