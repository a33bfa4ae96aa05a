"""The matrix report's plots (matplotlib, PNG bytes): per scenario, one line per variant.

A scenario run at several loads is drawn as lines against the load (throughput, p95); one run
at a single load as bars, one per variant. Poll adds the polls held per message, which a
bounded variant cannot raise past its capacity. Line style tells the interface apart (solid
WSGI, dashed ASGI, dotted Tornado); colours stay with a variant across the figures.
"""

from __future__ import annotations

import io

from loadtests.bench import matrix
from loadtests.bench.plots import axes_style, png, pyplot, unit
from loadtests.bench.results import Run, Step

STYLES = {"wsgi": "-", "asgi": "--", "tornado": ":"}


def make_plots(run: Run) -> dict[str, bytes]:
    plt = pyplot()
    palette = plt.get_cmap("tab20")
    names = matrix.targets(run)
    # tab20's strong colours first, then their light pairs: neighbours never look alike.
    colors = {t: palette((2 * i) % 20 + (i // 10) % 2) for i, t in enumerate(names)}
    out = {}
    steps = [s for s in run.steps if s.rps is not None]
    for scenario in dict.fromkeys(s.scenario for s in steps):
        rows = {t: _rows(steps, scenario, t) for t in names}
        rows = {t: r for t, r in rows.items() if r}
        multi = len({s.level for r in rows.values() for s in r}) > 1
        draw = _lines if multi else _bars
        out[scenario] = draw(plt, run, scenario, rows, colors)
    return out


def _rows(steps: list[Step], scenario: str, target: str) -> list[Step]:
    return sorted((s for s in steps if (s.scenario, s.target) == (scenario, target)),
                  key=lambda s: s.level)  # fmt: skip


def _load(rows: dict[str, list[Step]]) -> str:
    first = next(iter(rows.values()))[0]
    return "offered requests/s" if first.is_open else "users"


def _panels(scenario: str) -> list[tuple[str, str, bool]]:
    """(Step attribute or 'held', y label, log scale) per panel."""
    panels = [("rps", unit(scenario), False), ("p95_ms", "p95 ms (log)", True)]
    if scenario == "poll":
        panels.append(("held", "polls held per message", False))
    return panels


def _value(step: Step, key: str) -> float | None:
    if key == "held":
        return step.poll.held_mean if step.poll else None
    return getattr(step, key)


def _style(run: Run, target: str) -> str:
    return STYLES.get(matrix.target_info(run, target).get("interface", ""), "-")


def _lines(plt, run: Run, scenario: str, rows: dict[str, list[Step]], colors) -> bytes:
    panels = _panels(scenario)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels) + 2, 4.4), layout="constrained"
    )
    for ax, (key, ylabel, log) in zip(axes, panels, strict=True):
        for target, steps in rows.items():
            xs, ys = [s.level for s in steps], [_value(s, key) for s in steps]
            style = _style(run, target)
            ax.plot(xs, ys, style, marker="o", color=colors[target], label=target)
        if key == "held":
            top = max(s.level for r in rows.values() for s in r)
            ax.plot([0, top], [0, top], ":", color="grey", label="held = pollers")
        axes_style(ax, f"{scenario}: {ylabel}", _load(rows), ylabel, log=log)
        ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    if scenario == "poll":
        handles += axes[-1].get_legend_handles_labels()[0][-1:]
        labels += ["held = pollers"]
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    return _save(fig, plt)


def _bars(plt, run: Run, scenario: str, rows: dict[str, list[Step]], colors) -> bytes:
    panels = _panels(scenario)
    names = list(rows)
    level = rows[names[0]][0].level
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 1.2 + 0.35 * len(names)))
    for ax, (key, label, log) in zip(axes, panels, strict=True):
        values = [_value(rows[t][-1], key) or 0 for t in names]
        ax.barh(names, values, color=[colors[t] for t in names])
        ax.invert_yaxis()
        if key == "held":
            # A bounded variant's capacity, where the pollers outnumber it: its ceiling.
            capped = [(t, rows[t][-1].capacity) for t in names]
            capped = [(t, c) for t, c in capped if c is not None and c <= level]
            ax.scatter([c for _, c in capped], [t for t, _ in capped], marker="|", s=200,
                       color="black", label="capacity")  # fmt: skip
            if capped:
                ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"{scenario} at {level:g} {_load(rows)}: {label}")
        ax.set_xlabel(label)
        if log:
            ax.set_xscale("log")
        ax.grid(alpha=0.3, axis="x")
    return png(fig, plt)


def _save(fig, plt) -> bytes:
    """A constrained-layout figure as PNG (png() would re-run tight_layout over it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
