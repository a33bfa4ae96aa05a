"""The report's plots (matplotlib, PNG bytes): one figure per scenario.

Closed model: throughput and latency percentiles against the users. Open model: the latency of
the answers through the measurement window at the highest offered rate (a server that falls
behind shows a rising line), and the answered rate against the offered one.
"""

from __future__ import annotations

import io

from loadtests.bench import matrix
from loadtests.bench.results import Run, Step

COLORS = {"wsgi": "#1f77b4", "asgi": "#ff7f0e"}
#: Colours of targets other than the two aliases (the first two of matplotlib's own cycle too).
OTHER_COLORS = ("#1f77b4", "#ff7f0e")
LABELS = {"wsgi": "WSGI (Flask/Gunicorn)", "asgi": "ASGI (FastAPI/Uvicorn)"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rows(steps: list[Step], scenario: str, target: str) -> list[Step]:
    return sorted(
        (s for s in steps if (s.scenario, s.target) == (scenario, target)), key=lambda s: s.level
    )


def unit(scenario: str) -> str:
    return {
        "stream": "streams/s",
        "ws_echo": "messages/s",
        "ws_chat": "messages/s",
        "poll": "polls/s",
    }.get(scenario, "requests/s")


def png(fig, plt) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def axes_style(ax, title: str, xlabel: str, ylabel: str, log: bool = False) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both" if log else "major")
    ax.legend(fontsize=8)


def make_plots(run: Run) -> dict[str, bytes]:
    """One figure per scenario: the two services side by side, or the matrix's variants."""
    if matrix.is_matrix(run):
        from loadtests.bench import matrix_plots

        return matrix_plots.make_plots(run)
    plt = pyplot()
    steps = [s for s in run.steps if s.rps is not None]
    targets = matrix.targets(run)
    out = {}
    for scenario in dict.fromkeys(s.scenario for s in steps):
        mine = [s for s in steps if s.scenario == scenario]
        if any(s.is_open for s in mine):
            out[scenario] = _open_figure(plt, mine, scenario, targets)
        else:
            out[scenario] = _closed_figure(plt, mine, scenario, targets)
    return out


def _color(target: str, targets: list[str]) -> str:
    return COLORS.get(target) or OTHER_COLORS[targets.index(target) % len(OTHER_COLORS)]


# ------------------------------------------------------------------ closed model


def _look(target: str, targets: list[str]) -> tuple[str, str, str]:
    """(colour, legend label, short name) of a target."""
    short = target.upper() if target in LABELS else target
    return _color(target, targets), LABELS.get(target, target), short


def _closed_figure(plt, steps: list[Step], scenario: str, targets: list[str]) -> bytes:
    extra = scenario == "stream"
    fig, axes = plt.subplots(1, 3 if extra else 2, figsize=(15 if extra else 11, 4.2))
    marked = False
    for target in targets:
        rows = _rows(steps, scenario, target)
        if rows:
            look = _look(target, targets)
            marked = _throughput(axes[0], rows, scenario, look, marked)
            _percentiles(axes[1], rows, look, ("p50_ms", "p95_ms", "p99_ms"))
            if extra:
                _percentiles(axes[2], rows, look, ("ttfe_p50_ms", "ttfe_p95_ms"))
    axes_style(axes[0], f"{scenario}: throughput vs users", "users", unit(scenario))
    what = "round-trip" if scenario == "ws_echo" else "latency"
    axes_style(axes[1], f"{scenario}: {what} percentiles", "users", "ms (log)", log=True)
    if extra:
        axes_style(axes[2], "stream: time to first event", "users", "ms (log)", log=True)
    return png(fig, plt)


def _throughput(ax, rows: list[Step], scenario: str, look: tuple, marked: bool) -> bool:
    color, label, short = look
    xs = [r.level for r in rows]
    ax.plot(xs, [r.rps for r in rows], "o-", color=color, label=label)
    ideal = [r.ideal_rps for r in rows]
    if any(v is not None for v in ideal):
        bound = "offered rate" if scenario == "ws_echo" else f"Little's law bound ({short})"
        ax.plot(xs, ideal, "--", color=color, alpha=0.6, label=bound)
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


def _percentiles(ax, rows: list[Step], look: tuple, keys: tuple[str, ...]) -> None:
    color, _, short = look
    xs = [r.level for r in rows]
    for key, style in zip(keys, ("-", "--", ":"), strict=False):
        name = key.removeprefix("ttfe_")[:3]
        ax.plot(xs, [getattr(r, key) for r in rows], style, marker="o", color=color,
                label=f"{short} {name}")  # fmt: skip


# ------------------------------------------------------------------ open model


def _open_figure(plt, steps: list[Step], scenario: str, targets: list[str]) -> bytes:
    fig, (ax_time, ax_rate) = plt.subplots(1, 2, figsize=(11, 4.2))
    top = max(s.level for s in steps)
    for target in targets:
        rows = _rows(steps, scenario, target)
        if not rows:
            continue
        look = _look(target, targets)
        _timeline(ax_time, next((r for r in rows if r.level == top), rows[-1]), look)
        _answered(ax_rate, rows, look)
    ax_rate.plot([0, top], [0, top], ":", color="grey", label="answered = offered")
    axes_style(
        ax_time,
        f"{scenario}: latency through the window at {top:g}/s offered",
        "seconds into the measurement window",
        "ms from the scheduled send (log)",
        log=True,
    )
    axes_style(ax_rate, f"{scenario}: answered vs offered", "offered requests/s", "answered/s")
    return png(fig, plt)


def _timeline(ax, step: Step, look: tuple) -> None:
    color, _, short = look
    bins = [b for b in step.timeline or [] if b.p50_ms is not None]
    ax.plot([b.t_s for b in bins], [b.p50_ms for b in bins], "o-", color=color,
            label=f"{short} p50")  # fmt: skip
    ax.plot([b.t_s for b in bins], [b.max_ms for b in bins], ":", color=color,
            label=f"{short} max")  # fmt: skip


def _answered(ax, rows: list[Step], look: tuple) -> None:
    color, label, short = look
    xs = [r.level for r in rows]
    ax.plot(xs, [r.rps for r in rows], "o-", color=color, label=label)
    if any(r.ideal_rps != r.level for r in rows):
        ax.plot(xs, [r.ideal_rps for r in rows], "--", color=color, alpha=0.6,
                label=f"capacity bound ({short})")  # fmt: skip
