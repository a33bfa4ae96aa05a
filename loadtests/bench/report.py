"""Renders results.json into report.md, a self-contained report.html and a terminal summary.

The report is a list of blocks (heading, paragraph, list, table, image) rendered twice, to
Markdown (images as files under plots/) and to HTML (images base64-embedded).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from loadtests.bench import analysis, numbers
from loadtests.settings import ScenarioSettings

COLORS = {"wsgi": "#1f77b4", "asgi": "#ff7f0e"}
LABELS = {"wsgi": "WSGI (Flask/Gunicorn)", "asgi": "ASGI (FastAPI/Uvicorn)"}

WHAT = {
    "hello": "GET /hello back-to-back: the fixed cost of a request through nginx and each stack.",
    "io": (
        "GET /io?ms={io_ms} back-to-back: each request waits {io_ms} ms without using CPU. A sync "
        "worker is blocked for the whole wait; an event loop serves other requests meanwhile. "
        "Dashed lines: the Little's-law bound min(users, capacity) / {io_s:g} s."
    ),
    "cpu": (
        "GET /cpu?n={cpu_n} back-to-back: pure-Python work holding the GIL. Neither model "
        "computes faster than its processes and the host's cores allow."
    ),
    "stream": (
        "Server-sent events, {events} events {interval} ms apart per stream, read to the end and "
        "reopened. A sync worker is held for the whole stream. Throughput = streams/s; dashed: "
        "min(users, capacity) / {stream_s:g} s."
    ),
    "ws_echo": (
        "WebSocket echo (ASGI only): each user sends {ws_rate:g} messages/s on one connection and "
        "times each round trip. Dashed: the offered rate (users x {ws_rate:g}/s)."
    ),
    "ws_chat": (
        "WebSocket chat (ASGI only): rooms of {room} users, each sending {chat_rate:g} msg/s; "
        "latency is from the sender's stamp to each receiver (fan-out)."
    ),
}


_n = numbers.number
_pct = numbers.pct


# ------------------------------------------------------------------ tables


def summary_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    headers = [
        "scenario",
        "target",
        "users",
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
    rows = []
    for s in results.get("steps", []):
        lg = s.get("loadgen", {})
        note = ""
        if s.get("loadgen_bound"):
            note = "LOAD-GENERATOR BOUND: " + "; ".join(
                analysis.short_reason(r) for r in s.get("loadgen_reasons", [])
            )
        rows.append(
            [
                s["scenario"],
                s["target"],
                str(s["users"]),
                _n(s.get("rps")),
                _n(s.get("p50_ms"), 0),
                _n(s.get("p95_ms"), 0),
                _n(s.get("p99_ms"), 0),
                _n(s.get("fail_pct"), 2),
                _n(s.get("ideal_rps")),
                _pct(s.get("pct_of_ideal")),
                _n(s.get("server_rps")),
                _pct(lg.get("cpu_mean")),
                _pct(lg.get("host_cpu_mean")),
                note,
            ]
        )
    for na in results.get("not_applicable", []):
        rows.append(
            [na["scenario"], na["target"], "-", *["-"] * 10, "not applicable: " + na["reason"]]
        )
    return headers, rows


def crosscheck_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    headers = [
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
    rows = []
    for b in results.get("blocks", []):
        c = b.get("crosscheck") or {}
        verdict = {True: "ok", False: "MISMATCH", None: "n/a"}[c.get("ok")]
        if c.get("ok") is None and b.get("crosscheck_reason"):
            verdict = "n/a: " + b["crosscheck_reason"]
        diff = "n/a"
        if c.get("diff") is not None:
            diff = f"{c['diff']:+d}"
            if c.get("diff_pct") is not None:
                diff += f" ({c['diff_pct']:+.2f} %)"
        rows.append(
            [
                b["scenario"],
                b["service"],
                b.get("server_route") or b["route"],
                str(c.get("client_started", b.get("client", {}).get("started", ""))),
                str(c.get("client_completed", b.get("client", {}).get("completed", ""))),
                "n/a" if c.get("server") is None else str(c["server"]),
                diff,
                f"±{c['tolerance']:.0f}" if c.get("tolerance") is not None else "n/a",
                verdict,
            ]
        )
    return headers, rows


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def terminal_summary(results: dict) -> str:
    headers, rows = summary_rows(results)
    keep = [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13]
    table = text_table([headers[i] for i in keep], [[r[i] for i in keep] for r in rows])
    parts = [table]
    ch, cr = crosscheck_rows(results)
    if cr:
        parts.append("Client vs server (Prometheus) counts:\n" + text_table(ch, cr))
    parts.append("Findings:\n" + "\n".join(f"- {f}" for f in results.get("findings", [])))
    return "\n\n".join(parts)


# ------------------------------------------------------------------ plots


def _series(steps, scenario, target, key):
    rows = sorted(
        (s for s in steps if s["scenario"] == scenario and s["target"] == target),
        key=lambda s: s["users"],
    )
    return [s["users"] for s in rows], [s.get(key) for s in rows], rows


def make_plots(results: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s in results.get("steps", []) if s.get("rps") is not None]
    scenarios = list(dict.fromkeys(s["scenario"] for s in steps))
    out = {}
    for scenario in scenarios:
        extra = scenario == "stream"
        fig, axes = plt.subplots(1, 3 if extra else 2, figsize=(15 if extra else 11, 4.2))
        ax_t, ax_l = axes[0], axes[1]
        unit = {"stream": "streams/s", "ws_echo": "messages/s", "ws_chat": "messages/s"}.get(
            scenario, "requests/s"
        )
        marked = False
        for target in ("wsgi", "asgi"):
            xs, ys, rows = _series(steps, scenario, target, "rps")
            if not xs:
                continue
            color = COLORS[target]
            ax_t.plot(xs, ys, "o-", color=color, label=LABELS[target])
            ideal = [r.get("ideal_rps") for r in rows]
            if any(v is not None for v in ideal):
                label = (
                    "offered rate"
                    if scenario == "ws_echo"
                    else f"Little's law bound ({target.upper()})"
                )
                ax_t.plot(xs, ideal, "--", color=color, alpha=0.6, label=label)
            bad = [(r["users"], r["rps"]) for r in rows if r.get("loadgen_bound")]
            if bad:
                ax_t.scatter(
                    [b[0] for b in bad],
                    [b[1] for b in bad],
                    marker="x",
                    s=90,
                    color="red",
                    zorder=5,
                    label=None if marked else "load-generator bound",
                )
                marked = True
            for key, style in (("p50_ms", "-"), ("p95_ms", "--"), ("p99_ms", ":")):
                _, vals, _ = _series(steps, scenario, target, key)
                ax_l.plot(
                    xs,
                    vals,
                    style,
                    marker="o",
                    color=color,
                    label=f"{target.upper()} {key[:3]}",
                )
            if extra:
                for key, style in (("ttfe_p50_ms", "-"), ("ttfe_p95_ms", "--")):
                    _, vals, _ = _series(steps, scenario, target, key)
                    axes[2].plot(
                        xs,
                        vals,
                        style,
                        marker="o",
                        color=color,
                        label=f"{target.upper()} {key[5:8]}",
                    )
        ax_t.set_title(f"{scenario}: throughput vs users")
        ax_t.set_xlabel("users")
        ax_t.set_ylabel(unit)
        ax_t.grid(alpha=0.3)
        ax_t.legend(fontsize=8)
        ax_l.set_title(
            f"{scenario}: {'round-trip' if scenario == 'ws_echo' else 'latency'} percentiles"
        )
        ax_l.set_xlabel("users")
        ax_l.set_ylabel("ms (log)")
        ax_l.set_yscale("log")
        ax_l.grid(alpha=0.3, which="both")
        ax_l.legend(fontsize=8)
        if extra:
            axes[2].set_title("stream: time to first event")
            axes[2].set_xlabel("users")
            axes[2].set_ylabel("ms (log)")
            axes[2].set_yscale("log")
            axes[2].grid(alpha=0.3, which="both")
            axes[2].legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        out[scenario] = buf.getvalue()
    return out


# ------------------------------------------------------------------ documents


def _scenario_settings(results: dict) -> ScenarioSettings:
    """The run's scenario settings; a key missing from an older results.json takes the default."""
    return ScenarioSettings.from_mapping(results.get("meta", {}).get("scenario_settings", {}))


def _blocks(results: dict) -> list[tuple]:
    meta = results.get("meta", {})
    opts = meta.get("options", {})
    settings = _scenario_settings(results)
    blocks: list[tuple] = []
    title = "gateway-lab bench: WSGI vs ASGI under concurrency"
    if not results.get("complete", True):
        title += " (INCOMPLETE run)"
    blocks.append(("h1", title))
    health = meta.get("services", {})
    svc = []
    for target in ("wsgi", "asgi"):
        h = health.get(target) or {}
        if h:
            svc.append(
                f"{target.upper()}: {h.get('service')} on {h.get('server')}, "
                f"{h.get('workers')} workers, class {h.get('worker_class', 'n/a')}, "
                f"threads {h.get('threads', 'n/a')}, capacity "
                f"{meta.get('capacity', {}).get(target) or 'unbounded (event loop)'}"
            )
    versions = meta.get("versions", {})
    blocks.append(
        (
            "ul",
            [
                f"Started {meta.get('started_at')}, took {_n(meta.get('elapsed_s'), 0)} s; "
                f"profile {opts.get('profile')}; {len(results.get('steps', []))} steps of "
                f"{_n(opts.get('warmup_s'))} s warm-up (excluded) + {_n(opts.get('measure_s'))} s "
                "measured.",
                f"Stack {opts.get('url')}"
                + (f" (nginx bypassed: {opts['direct']})" if opts.get("direct") else "")
                + "; Prometheus "
                + (
                    f"{opts['prometheus_url']} (scrape interval "
                    f"{_n(meta.get('scrape_interval_s'))} s)."
                    if opts.get("prometheus_url")
                    else "not used (no cross-check)."
                ),
                *svc,
                f"Host: {meta.get('cpu_count')} CPUs, shared by nginx, both services, Prometheus "
                f"and the load generator ({meta.get('load_generator')}).",
                "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
            ],
        )
    )
    blocks.append(("h2", "Findings"))
    blocks.append(("ul", results.get("findings", [])))
    blocks.append(("h2", "Results"))
    blocks.append(
        (
            "p",
            "Throughput and percentiles are client-side (Locust) over each step's measurement "
            "window; warm-up excluded. 'bound/s' is the Little's-law bound (io, stream) or the "
            "offered rate (ws_echo); 'server/s' is the services' own http_requests_total rate "
            "from Prometheus over the same window (n/a when fewer than two scrapes fell inside "
            "it). Rows marked LOAD-GENERATOR BOUND measured Locust or the shared host, not the "
            "server's limit.",
        )
    )
    headers, rows = summary_rows(results)
    blocks.append(("table", headers, rows))
    for scenario in dict.fromkeys(s["scenario"] for s in results.get("steps", [])):
        blocks.append(("h3", scenario))
        fmt = {
            "io_ms": settings.io_ms,
            "io_s": settings.io_ms / 1000,
            "cpu_n": settings.cpu_n,
            "events": settings.stream_events,
            "interval": settings.stream_interval_ms,
            "stream_s": settings.stream_s,
            "ws_rate": settings.ws_rate,
            "room": settings.chat_room_size,
            "chat_rate": settings.chat_rate,
        }
        blocks.append(("p", WHAT.get(scenario, "").format(**fmt)))
        blocks.append(("img", scenario, f"{scenario}: throughput and latency vs users"))
    blocks.append(("h2", "Little's law, worked through"))
    blocks.extend(_littles_law_text(results))
    blocks.append(("h2", "Client vs server counts"))
    blocks.append(
        (
            "p",
            "Each scenario x target run is cut out of the servers' own counters "
            '(http_requests_total, or websocket_messages_total{direction="in"} for WebSockets, '
            "summed over the route's series) between the last scrape before it started and the "
            "first scrape after it ended, while that route was idle. The server count must lie "
            "between the requests the client completed (minus 502/503/504 answers, which nginx "
            "may give alone) and those it started (requests cut off at the end may or may not be "
            f"counted), widened by max({analysis.CROSSCHECK_ABS_TOL}, "
            f"{analysis.CROSSCHECK_REL_TOL:.0%} of the count). Warm-up traffic is included on "
            "both sides.",
        )
    )
    ch, cr = crosscheck_rows(results)
    blocks.append(("table", ch, cr))
    blocks.append(("h2", "Limits of this run"))
    blocks.append(
        (
            "ul",
            [
                "Locust runs as one process on the same host as nginx and both services: they "
                "compete for the same CPUs, so CPU-heavy steps measure the machine. Steps where "
                "Locust used >= 90 % of a core, or the host >= 95 %, are marked.",
                "Each step is short (see above); percentiles from fewer than a few hundred "
                "samples, and p99 especially, move between runs. Locust rounds response times "
                "above 100 ms to two significant digits.",
                "Closed-loop users (no think time) measure capacity, not behaviour under an open "
                "arrival rate: a slow server slows the clients down instead of building a queue "
                "of new arrivals.",
                "The server-side cross-check has the resolution of the Prometheus scrape "
                "interval; per-step server rates need two scrapes inside the window.",
            ],
        )
    )
    files = sorted({p for s in results.get("steps", []) for p in s.get("csv", {}).values()})
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


def _littles_law_text(results: dict) -> list[tuple]:
    steps = [s for s in results.get("steps", []) if s["scenario"] == "io" and s.get("rps")]
    capacity = results.get("meta", {}).get("capacity", {})
    io_s = _scenario_settings(results).io_ms / 1000
    if io_s <= 0:
        return []  # /io?ms=0 does not wait: no service time, no Little's-law bound
    out = [
        (
            "p",
            "L = lambda x W: requests in the system = throughput x time each spends there. Each "
            f"io request needs at least S = {io_s:g} s. A closed loop of N users keeps N requests "
            "in flight, so throughput = N / W. A server that runs at most C at once completes at "
            f"most C / S per second: the bound is min(N, C) / S. WSGI (sync) has C = workers x "
            f"threads = {capacity.get('wsgi') or 'n/a'}, so its bound is "
            f"{(capacity.get('wsgi') or 0) / io_s:g}/s whatever N is, and the other N - C users "
            "queue, which makes W = N x S / C. ASGI waits without holding a worker, so C is "
            "unbounded and the bound N / S grows with the users until something else (CPU, the "
            "load generator) runs out.",
        )
    ]
    if steps:
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
        for s in sorted(steps, key=lambda s: (s["target"], s["users"])):
            cap = capacity.get(s["target"])
            w_pred = analysis.littles_law_latency(s["users"], io_s, cap) * 1000
            rows.append(
                [
                    s["target"],
                    str(s["users"]),
                    _n(s.get("ideal_rps")),
                    _n(s["rps"]),
                    _pct(s.get("pct_of_ideal")),
                    _n(s.get("avg_ms"), 0),
                    _n(s.get("in_flight")),
                    _n(w_pred, 0),
                ]
            )
        out.append(("table", headers, rows))
        out.append(
            (
                "p",
                "L = lambda x W computed from the measurements should equal the users (every "
                "user always has one request out); where it is clearly lower, users spent time "
                "inside Locust rather than waiting on the server.",
            )
        )
    return out


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


def write_reports(run_dir: Path, results: dict) -> dict[str, Path]:
    images = make_plots(results)
    plot_dir = run_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in images.items():
        (plot_dir / f"{name}.png").write_bytes(data)
        paths[name] = f"plots/{name}.png"
    blocks = _blocks(results)
    md = run_dir / "report.md"
    md.write_text(render_markdown(blocks, paths))
    page = run_dir / "report.html"
    page.write_text(render_html(blocks, images))
    return {"markdown": md, "html": page}
