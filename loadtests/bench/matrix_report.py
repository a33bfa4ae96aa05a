"""The report's matrix section: variants x scenarios in one table, and long polling in detail.

Returns the report's blocks (heading, paragraph, list, table; see `report`) and plain tables for
the terminal; the cells come from `matrix`, the numbers' format from `numbers`.
"""

from __future__ import annotations

from loadtests.bench import matrix, numbers
from loadtests.bench.results import Run, Step

_n, _ms, _pct = numbers.number, numbers.ms, numbers.pct
#: Marks a cell whose step measured the load generator or the shared host, not the server.
LOADGEN_MARK = " [LG]"

Table = tuple[list[str], list[list[str]]]


def _capacity(run: Run, target: str) -> str:
    value = run.meta.capacity.get(target)
    return "unbounded" if value is None else str(value)


def _server(run: Run, target: str) -> str:
    info = matrix.target_info(run, target)
    if not info:
        return numbers.NA
    return f"{info['server']} {info['worker_class']} {info['workers']}x{info['threads']}"


def cell(step: Step | None, reason: str | None, compact: bool = False) -> str:
    """throughput · p95 · % of bound (no % where the scenario has no bound)."""
    if step is None:
        return "n/a" if reason else "-"
    parts = [f"{_n(step.rps)}/s"]
    if not compact:
        parts.append(f"p95 {_ms(step.p95_ms)}")
    if step.pct_of_ideal is not None:
        parts.append(_pct(step.pct_of_ideal))
    return " · ".join(parts) + (LOADGEN_MARK if step.loadgen_bound else "")


def matrix_table(run: Run, compact: bool = False) -> Table:
    columns = matrix.columns(run)
    headers = ["variant", "server", "capacity", *(c.label for c in columns)]
    rows = []
    for target in matrix.targets(run):
        cells = [
            cell(
                matrix.step_at(run, target, c),
                matrix.not_applicable(run, target, c.scenario),
                compact,
            )
            for c in columns
        ]
        rows.append([target, _server(run, target), _capacity(run, target), *cells])
    return headers, rows


POLL_HEADERS = [
    "variant",
    "pollers",
    "capacity",
    "polls/s",
    "% of bound",
    "with message",
    "204",
    "delivery p50",
    "delivery p95",
    "held per message (max)",
    "in flight (λW)",
    "poll p95",
    "publish p95",
]


def _poll_row(step: Step) -> list[str]:
    p = step.poll
    assert p is not None
    share = p.message_share
    publish = step.entries.get("POST /poll [publish]") or {}
    return [
        step.target,
        str(step.users),
        _capacity_of(step),
        _n(step.rps),
        _pct(step.pct_of_ideal),
        _pct(None if share is None else 100 * share),
        str(p.timed_out),
        _ms(p.delivery_p50_ms),
        _ms(p.delivery_p95_ms),
        f"{_n(p.held_mean)} ({_n(p.held_max)})",
        _n(step.in_flight),
        _ms(step.p95_ms),
        _ms(publish.get("p95_ms")),
    ]


def _capacity_of(step: Step) -> str:
    return "unbounded" if step.capacity is None else str(step.capacity)


def poll_table(run: Run) -> Table:
    steps = [s for s in run.steps if s.poll is not None]
    order = matrix.targets(run)
    steps.sort(key=lambda s: (order.index(s.target) if s.target in order else 0, s.level))
    return POLL_HEADERS, [_poll_row(s) for s in steps]


def _bounds_text(run: Run) -> str:
    scenarios = list(dict.fromkeys(s.scenario for s in run.steps))
    known = [f"{s}: {matrix.BOUNDS[s]}" for s in scenarios if s in matrix.BOUNDS]
    without = [s for s in scenarios if s not in matrix.BOUNDS]
    text = "What '% of bound' is measured against - " + "; ".join(known) + "."
    if without:
        text += f" {', '.join(without)}: no bound applies (a CPU race), so no % is given."
    return text + f" A variant at >= {matrix.REACH_PCT:.0f} % reaches its bound."


def section(run: Run) -> list[tuple]:
    out: list[tuple] = []
    if matrix.is_matrix(run):
        out += [
            ("h2", "The matrix: variants x scenarios"),
            (
                "p",
                "One row per server variant, one column per scenario and load (u: users). Each "
                "cell: client-side throughput · p95 latency · % of the scenario's bound at that "
                "load and the variant's capacity (Little's law; capacity from /variants.json: "
                "workers x requests per worker, unbounded for an event loop). n/a: the variant "
                f"does not serve the scenario (below);{LOADGEN_MARK}: load-generator bound.",
            ),
            ("table", *matrix_table(run)),
            ("p", _bounds_text(run)),
        ]
        reasons = [f"{na.scenario} on {na.target}: {na.reason}" for na in run.not_applicable]
        if reasons:
            out.append(("ul", reasons))
    if any(s.poll for s in run.steps):
        out += [
            ("h3", "Long polling: what a waiting poll holds"),
            (
                "p",
                "Every poll waits on the server for the next message of its room, and a "
                "publisher posts messages at a fixed rate through the same variant. 'held per "
                "message' is how many polls received each message published in the window: "
                "the polls waiting on the server at that moment. A sync worker (or a thread of a "
                "pool) is held by its poll for the whole wait, so a variant of capacity C holds "
                "at most C and the other pollers queue - the publisher's POST among them, which "
                "delays the messages themselves; an event loop or gevent holds them all. "
                "'in flight' is throughput x mean poll latency: the pollers' requests out, "
                "waiting or queued. 'delivery' runs from a message's sending (its sent_at) to "
                "its receipt; 'poll p95' is a whole poll, queueing included; 'publish p95' the "
                "publisher's POST. '204': polls that timed out without a message.",
            ),
            ("table", *poll_table(run)),
        ]
    return out


def tables(run: Run) -> list[tuple[str, list[str], list[list[str]]]]:
    """The terminal's tables: the compact matrix (throughput · % of bound), and long polling."""
    out = [("Matrix (throughput · % of bound)", *matrix_table(run, compact=True))]
    if any(s.poll for s in run.steps):
        out.append(("Long polling", *poll_table(run)))
    return out
