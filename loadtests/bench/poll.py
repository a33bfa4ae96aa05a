"""The poll scenario's figures over a measurement window, from what its room recorded.

Pure: the Locust side (`loadtests.scenarios.PollRoom`) records every message published and every
poll answered; this reads a window out of those records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from loadtests.bench import analysis
from loadtests.bench.results import PollFigures

#: A message published in the last moments of a window may be received after it ends: only
#: those published at least this long before the end count for the pollers held per message.
SETTLE_S = 0.25


def window_figures(
    published: Sequence[tuple[int, float]],
    answers: Sequence[tuple[float, int | None, float | None]],
    t0: float,
    t1: float,
) -> PollFigures:
    """``published``: (seq, time sent) per message; ``answers``: (time answered, seq or None for
    a 204, delivery ms or None) per poll."""
    inside = [a for a in answers if t0 <= a[0] <= t1]
    delivered = [ms for _, seq, ms in inside if seq is not None and ms is not None]
    receivers = Counter(seq for _, seq, _ in answers if seq is not None)
    counted = [receivers[seq] for seq, sent in published if t0 <= sent <= t1 - SETTLE_S]
    with_message = sum(1 for _, seq, _ in inside if seq is not None)
    return PollFigures(
        published=sum(1 for _, sent in published if t0 <= sent <= t1),
        answered=len(inside),
        with_message=with_message,
        timed_out=len(inside) - with_message,
        delivery_p50_ms=analysis.percentile(delivered, 50) if delivered else None,
        delivery_p95_ms=analysis.percentile(delivered, 95) if delivered else None,
        held_mean=sum(counted) / len(counted) if counted else None,
        held_max=max(counted) if counted else None,
    )
