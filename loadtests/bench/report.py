"""Renders a run into report.md, a self-contained report.html and a terminal summary.

The report is a list of blocks (heading, paragraph, list, table, image) rendered twice, to
Markdown (images as files under plots/) and to HTML (images base64-embedded). It reads the typed
run (`results.Run`); the findings' words come from `prose`, the plots from `plots`.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from loadtests.bench import analysis, matrix, matrix_report, numbers, plots
from loadtests.bench.results import OPEN, Run, Step

WHAT = {
    "hello": "GET /hello: the fixed cost of a request through nginx and each stack.",
    "io": (
        "GET /io?ms={io_ms}: each request waits {io_ms} ms without using CPU. A sync worker is "
        "blocked for the whole wait; an event loop serves other requests meanwhile."
    ),
    "cpu": (
        "GET /cpu?n={cpu_n}: pure-Python work holding the GIL. Neither model computes faster "
        "than its processes and the host's cores allow."
    ),
    "stream": (
        "Server-sent events, {events} events {interval} ms apart per stream, read to the end and "
        "reopened. A sync worker is held for the whole stream. Throughput = streams/s."
    ),
    "ws_echo": (
        "WebSocket echo (variants with WebSockets): each user sends {ws_rate:g} messages/s on "
        "one connection and times each round trip."
    ),
    "ws_chat": (
        "WebSocket chat (variants with WebSockets): rooms of {room} users, each sending "
        "{chat_rate:g} msg/s; latency is from the sender's stamp to each receiver (fan-out)."
    ),
    "poll": (
        "Long polling: every user sends GET /poll?room=R&timeout_ms={poll_timeout_ms} back to back "
        "into one room, and a publisher posts {poll_rate:g} messages/s to it (POST /poll, through "
        "the same variant). A waiting poll is answered by the next message (200) or at its "
        "timeout (204), and holds a sync worker all the while. Throughput = polls answered/s."
    ),
}
#: What the dashed lines of the two-service plots are.
PLOT_NOTES = {
    "io": "Dashed lines: the Little's-law bound min(users, capacity) / {io_s:g} s.",
    "stream": "Dashed: min(users, capacity) / {stream_s:g} s.",
    "poll": "Dashed: min(users, capacity) / {poll_wait_s:g} s.",
    "ws_echo": "Dashed: the offered rate (users x {ws_rate:g}/s).",
}
#: The open model's paragraph, after the scenario's own.
OPEN_WHAT = (
    "Open model: requests leave on a fixed schedule at the offered rate whether or not earlier "
    "ones were answered, and each is timed from its scheduled send. Left: the latency of the "
    "answers through the measurement window at the highest offered rate - flat when the server "
    "keeps up, rising when requests arrive faster than it answers them and the backlog grows. "
    "Right: answered against offered requests/s (dotted: answered = offered; dashed: what the "
    "server's capacity allows)."
)

_n = numbers.number
_pct = numbers.pct


def load_text(step: Step) -> str:
    """A step's load: '40' users, or '30/s' offered."""
    return f"{_n(step.offered_rps)}/s" if step.is_open else str(step.users)


# ------------------------------------------------------------------ tables

SUMMARY_HEADERS = [
    "scenario",
    "target",
    "load",
    "throughput/s",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "fail %",
    "bound/s",
    "% of bound",
    "server/s",
    "Locust CPU",
    "host CPU",
    "note",
]


def _note(step: Step) -> str:
    notes = []
    if step.is_open:
        notes.append(f"open: {step.unanswered} of {step.sent} sent unanswered at the end")
    if step.loadgen_bound:
        reasons = "; ".join(analysis.short_reason(r) for r in step.loadgen_reasons)
        notes.append("LOAD-GENERATOR BOUND: " + reasons)
    return "; ".join(notes)


def _summary_row(s: Step) -> list[str]:
    return [
        s.scenario,
        s.target,
        load_text(s),
        _n(s.rps),
        _n(s.p50_ms, 0),
        _n(s.p95_ms, 0),
        _n(s.p99_ms, 0),
        _n(s.fail_pct, 2),
        _n(s.ideal_rps),
        _pct(s.pct_of_ideal),
        _n(s.server_rps),
        _pct(s.loadgen.get("cpu_mean")),
        _pct(s.loadgen.get("host_cpu_mean")),
        _note(s),
    ]


def summary_rows(run: Run) -> tuple[list[str], list[list[str]]]:
    rows = [_summary_row(s) for s in run.steps]
    for na in run.not_applicable:
        rows.append([na.scenario, na.target, "-", *["-"] * 10, "not applicable: " + na.reason])
    return SUMMARY_HEADERS, rows


CROSSCHECK_HEADERS = [
    "scenario",
    "service",
    "route",
    "client started",
    "client completed",
    "server counted",
    "difference",
    "tolerance",
    "verdict",
]


def _crosscheck_row(block) -> list[str]:
    c = block.crosscheck or analysis.crosscheck(
        block.client.started, block.client.completed, None, block.client.gateway_error
    )
    verdict = {True: "ok", False: "MISMATCH", None: "n/a"}[c.ok]
    if c.ok is None and block.crosscheck_reason:
        verdict = "n/a: " + block.crosscheck_reason
    diff = numbers.NA if c.diff is None else f"{c.diff:+d}"
    if c.diff_pct is not None:
        diff += f" ({c.diff_pct:+.2f} %)"
    return [
        block.scenario,
        block.service,
        block.server_route or block.route,
        str(c.client_started),
        str(c.client_completed),
        numbers.NA if c.server is None else str(c.server),
        diff,
        f"±{c.tolerance:.0f}",
        verdict,
    ]


def crosscheck_rows(run: Run) -> tuple[list[str], list[list[str]]]:
    return CROSSCHECK_HEADERS, [_crosscheck_row(b) for b in run.blocks]


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def terminal_summary(run: Run) -> str:
    if matrix.is_matrix(run):
        parts = [f"{title}:\n" + text_table(h, r) for title, h, r in matrix_report.tables(run)]
    else:
        headers, rows = summary_rows(run)
        keep = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13]
        parts = [text_table([headers[i] for i in keep], [[r[i] for i in keep] for r in rows])]
        if any(s.poll for s in run.steps):
            parts.append("Long polling:\n" + text_table(*matrix_report.poll_table(run)))
    ch, cr = crosscheck_rows(run)
    if cr:
        parts.append("Client vs server (Prometheus) counts:\n" + text_table(ch, cr))
    parts.append("Findings:\n" + "\n".join(f"- {f}" for f in run.findings))
    return "\n\n".join(parts)


# ------------------------------------------------------------------ documents


def _blocks(run: Run) -> list[tuple]:
    blocks: list[tuple] = []
    blocks += _header(run)
    blocks += [("h2", "Findings"), ("ul", run.findings)]
    if matrix.is_matrix(run) or any(s.poll for s in run.steps):
        blocks += matrix_report.section(run)
    blocks += _results(run)
    if run.meta.model == OPEN:
        blocks += [("h2", "Open model against closed loop"), *_open_model_text(run)]
    blocks += [("h2", "Little's law, worked through"), *_littles_law_text(run)]
    blocks += _crosscheck_section(run)
    blocks += [("h2", "Limits of this run"), ("ul", _limits(run))]
    files = sorted({p for s in run.steps for p in s.csv.values()})
    blocks.append(("h2", "Files"))
    blocks.append(
        (
            "p",
            "results.json (every figure and the metadata), report.md, report.html, plots/*.png, "
            "and the raw Locust CSVs per step: "
            + ", ".join(files[:6])
            + (" ..." if len(files) > 6 else ""),
        )
    )
    return blocks


def _service_line(run: Run, target: str) -> str | None:
    h = run.meta.services.get(target) or {}
    info = matrix.target_info(run, target)
    capacity = run.meta.capacity.get(target)
    if info:
        return (
            f"{target}: {info['framework']} on {info['server']} ({info['worker_class']}), "
            f"{info['workers']} workers x {info['threads']} threads, capacity "
            f"{capacity or 'unbounded (event loop)'}, prefix {info['prefix'] or '(direct)'}"
        )
    if not h:
        return None
    return (
        f"{target.upper()}: {h.get('service')} on {h.get('server')}, {h.get('workers')} workers, "
        f"class {h.get('worker_class', 'n/a')}, threads {h.get('threads', 'n/a')}, capacity "
        f"{run.meta.capacity.get(target) or 'unbounded (event loop)'}"
    )


def _header(run: Run) -> list[tuple]:
    meta, opts = run.meta, run.meta.options
    title = (
        "gateway-lab bench: server variants under concurrency"
        if matrix.is_matrix(run)
        else "gateway-lab bench: WSGI vs ASGI under concurrency"
    )
    if not run.complete:
        title += " (INCOMPLETE run)"
    model = (
        "open model (requests on a schedule at an offered rate)"
        if meta.model == OPEN
        else "closed loop (each user waits for its answer)"
    )
    prometheus = (
        f"{opts['prometheus_url']} (scrape interval {_n(meta.scrape_interval_s)} s)."
        if opts.get("prometheus_url")
        else "not used (no cross-check)."
    )
    direct = f" (nginx bypassed: {opts['direct']})" if opts.get("direct") else ""
    items = [
        f"Started {meta.started_at}, took {_n(meta.elapsed_s, 0)} s; profile "
        f"{opts.get('profile')}; {model}; {len(run.steps)} steps of {_n(opts.get('warmup_s'))} s "
        f"warm-up (excluded) + {_n(opts.get('measure_s'))} s measured.",
        f"Stack {opts.get('url')}{direct}; Prometheus {prometheus}",
        *filter(None, (_service_line(run, t) for t in matrix.targets(run))),
        f"Host: {meta.cpu_count} CPUs, shared by nginx, the services, Prometheus and the load "
        f"generator ({meta.load_generator}).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta.versions.items() if v),
    ]
    return [("h1", title), ("ul", items)]


def _what(run: Run, scenario: str) -> str:
    s = run.meta.scenario_settings
    text = WHAT.get(scenario, "")
    if not matrix.is_matrix(run) and scenario in PLOT_NOTES:
        text += " " + PLOT_NOTES[scenario]
    text = text.format(
        io_ms=s.io_ms,
        io_s=s.io_ms / 1000,
        cpu_n=s.cpu_n,
        events=s.stream_events,
        interval=s.stream_interval_ms,
        stream_s=s.stream_s,
        ws_rate=s.ws_rate,
        room=s.chat_room_size,
        chat_rate=s.chat_rate,
        poll_timeout_ms=s.poll_timeout_ms,
        poll_rate=s.poll_rate,
        poll_wait_s=s.poll_wait_s,
    )
    return f"{text} {OPEN_WHAT}" if run.meta.model == OPEN else text


def _results(run: Run) -> list[tuple]:
    out: list[tuple] = [("h2", "Results")]
    out.append(
        (
            "p",
            "Throughput and percentiles are client-side (Locust) over each step's measurement "
            "window; warm-up excluded. 'load' is the users of a closed-loop step or the offered "
            "rate of an open-model one. 'bound/s' is the Little's-law bound (io, stream), the "
            "offered rate (ws_echo, open model) or what capacity allows of it; 'server/s' is the "
            "services' own request counter's rate from Prometheus over the same window (n/a when "
            "fewer than two scrapes fell inside it). Rows marked LOAD-GENERATOR BOUND measured "
            "Locust or the shared host, not the server's limit.",
        )
    )
    headers, rows = summary_rows(run)
    out.append(("table", headers, rows))
    for scenario in dict.fromkeys(s.scenario for s in run.steps):
        out.append(("h3", scenario))
        out.append(("p", _what(run, scenario)))
        out.append(("img", scenario, f"{scenario}: throughput and latency"))
    return out


def _open_model_text(run: Run) -> list[tuple]:
    io_s = run.meta.scenario_settings.io_ms / 1000
    cap = run.meta.capacity.get("wsgi")
    cap_rps = f"{cap / io_s:g}/s" if cap and io_s > 0 else "its capacity"
    return [
        (
            "p",
            "A closed loop of N users never has more than N requests out: when the server slows "
            "down, the users wait, send less, and the time a request would have waited before it "
            "was even sent is never measured (coordinated omission). Real clients do not wait for "
            "each other. Here every request leaves at its scheduled time, answered or not, and "
            "its latency runs from that time. At an offered rate below capacity both models "
            f"agree. Above it - WSGI answers at most {cap_rps} of {io_s * 1000:g} ms I/O - the "
            "open model's backlog grows by (offered - capacity) requests every second, and each "
            "new request waits behind all of them: latency rises through the window for as long "
            "as the rate lasts, instead of settling at N / throughput as in the closed loop. An "
            "event loop that waits without holding a worker keeps up at the same rate.",
        ),
        (
            "p",
            "'sent' counts the requests scheduled in the window, 'unanswered' those of them still "
            "open at its end (their wait is not in the percentiles yet, which understates the "
            "tail of a server that falls behind).",
        ),
    ]


def _littles_law_text(run: Run) -> list[tuple]:
    steps = [s for s in run.steps if s.scenario == "io" and s.rps and not s.is_open]
    io_s = run.meta.scenario_settings.io_ms / 1000
    if io_s <= 0:
        return []  # /io?ms=0 does not wait: no service time, no Little's-law bound
    out: list[tuple] = [
        (
            "p",
            "L = lambda x W: requests in the system = throughput x time each spends there. Each "
            f"io request needs at least S = {io_s:g} s. A closed loop of N users keeps N requests "
            "in flight, so throughput = N / W. A server that runs at most C at once completes at "
            f"most C / S per second: the bound is min(N, C) / S. {_capacities(run, io_s)} Beyond "
            "C the other N - C users queue, which makes W = N x S / C. An event loop waits "
            "without holding a worker, so C is unbounded and the bound N / S grows with the "
            "users until something else (CPU, the load generator) runs out.",
        )
    ]
    if steps:
        out.append(("table", *_littles_law_table(run, steps, io_s)))
        out.append(
            (
                "p",
                "L = lambda x W computed from the measurements should equal the users (every "
                "user always has one request out); where it is clearly lower, users spent time "
                "inside Locust rather than waiting on the server.",
            )
        )
    return out


def _capacities(run: Run, io_s: float) -> str:
    """Each bounded target's C and C / S, in words."""
    bounded = [(t, run.meta.capacity.get(t)) for t in matrix.targets(run)]
    parts = [f"{t} has C = {c}, so at most {c / io_s:g}/s" for t, c in bounded if c]
    if not parts:
        return "No target of this run has a bounded capacity."
    return "Capacity = workers x requests per worker: " + "; ".join(parts) + ", whatever N is."


def _littles_law_table(run: Run, steps: list[Step], io_s: float) -> tuple[list, list]:
    headers = [
        "target",
        "users",
        "bound/s",
        "measured/s",
        "% of bound",
        "mean W ms",
        "L = lambda x W",
        "W predicted at bound ms",
    ]
    rows = []
    for s in sorted(steps, key=lambda s: (s.target, s.level)):
        cap = run.meta.capacity.get(s.target)
        w_pred = analysis.littles_law_latency(s.users or 0, io_s, cap) * 1000
        rows.append(
            [
                s.target,
                str(s.users),
                _n(s.ideal_rps),
                _n(s.rps),
                _pct(s.pct_of_ideal),
                _n(s.avg_ms, 0),
                _n(s.in_flight),
                _n(w_pred, 0),
            ]
        )
    return headers, rows


def _crosscheck_section(run: Run) -> list[tuple]:
    text = (
        "Each scenario x target run is cut out of the servers' own counters "
        '(http_requests_total, or websocket_messages_total{direction="in"} for WebSockets: one '
        "per message a client sent, the same thing the client counts as started and completed "
        "per echo or chat message), summed over the route's series, between the last scrape "
        "before it started and the first scrape after it ended, while that route was idle. A "
        "series that a scrape did not carry did not exist then and counts as 0 (a fresh server "
        "creates a route's series with its first request; an earlier process's stored samples "
        "are not this run's); a counter that goes down in between means the server restarted, "
        "and the check says so instead of guessing. The server count must lie between the "
        "requests the client completed (minus 502/503/504 answers, which nginx may give alone) "
        "and those it started (requests cut off at the end may or may not be counted), widened "
        f"by max({analysis.CROSSCHECK_ABS_TOL}, {analysis.CROSSCHECK_REL_TOL:.0%} of the count). "
        "Warm-up traffic is included on both sides."
    )
    headers, rows = crosscheck_rows(run)
    return [("h2", "Client vs server counts"), ("p", text), ("table", headers, rows)]


def _limits(run: Run) -> list[str]:
    model = (
        "The open model's schedule runs in the same gevent process as everything else in "
        "Locust: when that process is busy, sends leave late (they are still timed from their "
        "scheduled time, and sent at once rather than skipped)."
        if run.meta.model == OPEN
        else "Closed-loop users (no think time) measure capacity, not behaviour under an open "
        "arrival rate: a slow server slows the clients down instead of building a queue of new "
        "arrivals (the open model, --model open, shows that)."
    )
    return [
        "Locust runs as one process on the same host as nginx and both services: they compete "
        "for the same CPUs, so CPU-heavy steps measure the machine. Steps where Locust used "
        ">= 90 % of a core, or the host >= 95 %, are marked.",
        "Each step is short (see above); percentiles from fewer than a few hundred samples, and "
        "p99 especially, move between runs. Locust rounds response times above 100 ms to two "
        "significant digits.",
        model,
        "The server-side cross-check has the resolution of the Prometheus scrape interval; "
        "per-step server rates need two scrapes inside the window.",
    ]


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: list[tuple], image_paths: dict[str, str]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + block[1])
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]) or "- (none)")
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |"]
            lines.append("|" + "---|" * len(headers))
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img" and block[1] in image_paths:
            out.append(f"![{block[2]}]({image_paths[block[1]]})")
    return "\n\n".join(out) + "\n"


def render_html(blocks: list[tuple], images: dict[str, bytes]) -> str:
    esc = html.escape
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{esc(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in block[1])
            rows = []
            for r in block[2]:
                cls = ' class="flag"' if any("BOUND" in c or "MISMATCH" in c for c in r) else ""
                rows.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
            body.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            )
        elif kind == "img" and block[1] in images:
            data = base64.b64encode(images[block[1]]).decode("ascii")
            body.append(
                f'<figure><img alt="{esc(block[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block[2])}</figcaption></figure>"
            )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
        "color:#222}table{border-collapse:collapse;font-size:13px;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}"
        "tr.flag{background:#fde8e8}img{max-width:100%}figcaption{font-size:12px;color:#666}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>gateway-lab bench</title><style>{style}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_reports(run_dir: Path, run: Run) -> dict[str, Path]:
    images = plots.make_plots(run)
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in images.items():
        (plot_dir / f"{name}.png").write_bytes(data)
        paths[name] = f"plots/{name}.png"
    blocks = _blocks(run)
    md = run_dir / "report.md"
    md.write_text(render_markdown(blocks, paths))
    page = run_dir / "report.html"
    page.write_text(render_html(blocks, images))
    return {"markdown": md, "html": page}
