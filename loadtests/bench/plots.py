"""The report's plots (matplotlib, PNG bytes): one figure per scenario.

Closed model: throughput and latency percentiles against the users. Open model: the latency of
the answers through the measurement window at the highest offered rate (a server that falls
behind shows a rising line), and the answered rate against the offered one.
"""

from __future__ import annotations

import io

from loadtests.bench.results import Run, Step

COLORS = {"wsgi": "#1f77b4", "asgi": "#ff7f0e"}
LABELS = {"wsgi": "WSGI (Flask/Gunicorn)", "asgi": "ASGI (FastAPI/Uvicorn)"}
TARGETS = ("wsgi", "asgi")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rows(steps: list[Step], scenario: str, target: str) -> list[Step]:
    return sorted(
        (s for s in steps if (s.scenario, s.target) == (scenario, target)), key=lambda s: s.level
    )


def _unit(scenario: str) -> str:
    return {"stream": "streams/s", "ws_echo": "messages/s", "ws_chat": "messages/s"}.get(
        scenario, "requests/s"
    )


def _png(fig, plt) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _axes_style(ax, title: str, xlabel: str, ylabel: str, log: bool = False) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both" if log else "major")
    ax.legend(fontsize=8)


def make_plots(run: Run) -> dict[str, bytes]:
    plt = _pyplot()
    steps = [s for s in run.steps if s.rps is not None]
    out = {}
    for scenario in dict.fromkeys(s.scenario for s in steps):
        mine = [s for s in steps if s.scenario == scenario]
        if any(s.is_open for s in mine):
            out[scenario] = _open_figure(plt, mine, scenario)
        else:
            out[scenario] = _closed_figure(plt, mine, scenario)
    return out


# ------------------------------------------------------------------ closed model


def _closed_figure(plt, steps: list[Step], scenario: str) -> bytes:
    extra = scenario == "stream"
    fig, axes = plt.subplots(1, 3 if extra else 2, figsize=(15 if extra else 11, 4.2))
    marked = False
    for target in TARGETS:
        rows = _rows(steps, scenario, target)
        if rows:
            marked = _throughput(axes[0], rows, scenario, target, marked)
            _percentiles(axes[1], rows, target, ("p50_ms", "p95_ms", "p99_ms"))
            if extra:
                _percentiles(axes[2], rows, target, ("ttfe_p50_ms", "ttfe_p95_ms"))
    _axes_style(axes[0], f"{scenario}: throughput vs users", "users", _unit(scenario))
    what = "round-trip" if scenario == "ws_echo" else "latency"
    _axes_style(axes[1], f"{scenario}: {what} percentiles", "users", "ms (log)", log=True)
    if extra:
        _axes_style(axes[2], "stream: time to first event", "users", "ms (log)", log=True)
    return _png(fig, plt)


def _throughput(ax, rows: list[Step], scenario: str, target: str, marked: bool) -> bool:
    xs = [r.level for r in rows]
    color = COLORS[target]
    ax.plot(xs, [r.rps for r in rows], "o-", color=color, label=LABELS[target])
    ideal = [r.ideal_rps for r in rows]
    if any(v is not None for v in ideal):
        label = (
            "offered rate" if scenario == "ws_echo" else f"Little's law bound ({target.upper()})"
        )
        ax.plot(xs, ideal, "--", color=color, alpha=0.6, label=label)
    bad = [r for r in rows if r.loadgen_bound]
    if bad:
        ax.scatter(
            [b.level for b in bad],
            [b.rps for b in bad],
            marker="x",
            s=90,
            color="red",
            zorder=5,
            label=None if marked else "load-generator bound",
        )
    return marked or bool(bad)


def _percentiles(ax, rows: list[Step], target: str, keys: tuple[str, ...]) -> None:
    xs = [r.level for r in rows]
    for key, style in zip(keys, ("-", "--", ":"), strict=False):
        name = key.removeprefix("ttfe_")[:3]
        ax.plot(
            xs,
            [getattr(r, key) for r in rows],
            style,
            marker="o",
            color=COLORS[target],
            label=f"{target.upper()} {name}",
        )


# ------------------------------------------------------------------ open model


def _open_figure(plt, steps: list[Step], scenario: str) -> bytes:
    fig, (ax_time, ax_rate) = plt.subplots(1, 2, figsize=(11, 4.2))
    top = max(s.level for s in steps)
    for target in TARGETS:
        rows = _rows(steps, scenario, target)
        if not rows:
            continue
        _timeline(ax_time, next((r for r in rows if r.level == top), rows[-1]), target)
        _answered(ax_rate, rows, target)
    ax_rate.plot([0, top], [0, top], ":", color="grey", label="answered = offered")
    _axes_style(
        ax_time,
        f"{scenario}: latency through the window at {top:g}/s offered",
        "seconds into the measurement window",
        "ms from the scheduled send (log)",
        log=True,
    )
    _axes_style(ax_rate, f"{scenario}: answered vs offered", "offered requests/s", "answered/s")
    return _png(fig, plt)


def _timeline(ax, step: Step, target: str) -> None:
    bins = [b for b in step.timeline or [] if b.p50_ms is not None]
    color = COLORS[target]
    ax.plot([b.t_s for b in bins], [b.p50_ms for b in bins], "o-", color=color,
            label=f"{target.upper()} p50")  # fmt: skip
    ax.plot([b.t_s for b in bins], [b.max_ms for b in bins], ":", color=color,
            label=f"{target.upper()} max")  # fmt: skip


def _answered(ax, rows: list[Step], target: str) -> None:
    xs = [r.level for r in rows]
    ax.plot(xs, [r.rps for r in rows], "o-", color=COLORS[target], label=LABELS[target])
    if any(r.ideal_rps != r.level for r in rows):
        ax.plot(xs, [r.ideal_rps for r in rows], "--", color=COLORS[target], alpha=0.6,
                label=f"capacity bound ({target.upper()})")  # fmt: skip
