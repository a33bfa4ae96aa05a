"""The bench's report maths: Little's law, saturation, ratios, cross-check, load-generator check.

Pure functions over plain numbers (no Locust, no I/O), unit tested in
tests/unit/test_bench_report.py. What they conclude about a run is in `findings` (data); the
words are the report's.

Little's law: in a stable system the mean number of requests inside it equals arrival rate x
mean time inside, L = lambda x W. A closed-loop client of N users with no think time keeps N
requests in flight, so its throughput is N / W. A server that can run at most C requests at once
(Gunicorn sync: workers x threads), each taking at least S seconds, cannot finish more than
C / S per second; so the best a run can do is min(N, C) / S (C unbounded for an event loop
that only waits: N / S). When N > C the excess requests queue, and W grows to N / (C / S).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

#: Client/server count agreement: |difference| within max(ABS, REL x client count), beyond the
#: requests the client abandoned at the end of a run (those may or may not reach the server).
CROSSCHECK_REL_TOL = 0.02
CROSSCHECK_ABS_TOL = 5

#: A step is marked load-generator-bound when Locust's process used at least this much of a
#: core during the measurement (Locust itself warns at 90 %).
LOADGEN_CPU_LIMIT = 90.0
#: ... or when it used at least LOADGEN_BUSY_CPU and reached less than LOADGEN_SHORTFALL of the
#: ideal rate while its users were not actually waiting on the server (in-flight < users).
LOADGEN_BUSY_CPU = 70.0
LOADGEN_SHORTFALL = 0.85
IN_FLIGHT_SHORTFALL = 0.9
#: The whole host (servers + Locust) at or above this CPU use: the run measures the machine.
HOST_CPU_LIMIT = 95.0

#: Marginal scaling below which throughput counts as flattened (0 = flat, 1 = linear).
SATURATION_EFFICIENCY = 0.5


def littles_law_ideal(users: float, service_s: float, capacity: float | None = None) -> float:
    """Best closed-loop throughput: min(users, capacity) / service time (capacity None = inf)."""
    if service_s <= 0:
        raise ValueError("service time must be > 0")
    if users < 0:
        raise ValueError("users must be >= 0")
    concurrent = users if capacity is None else min(users, capacity)
    return concurrent / service_s


def littles_law_latency(users: float, service_s: float, capacity: float | None = None) -> float:
    """Mean time in system a closed loop sees at that bound: users / ideal throughput."""
    ideal = littles_law_ideal(users, service_s, capacity)
    return users / ideal if ideal else math.inf


def in_flight(rps: float, mean_latency_ms: float) -> float:
    """L = lambda x W: requests in flight on average, from throughput and mean latency."""
    return rps * mean_latency_ms / 1000.0


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile by nearest rank (an observed value, like Locust's)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def percent_of(achieved: float, ideal: float | None) -> float | None:
    """achieved as a percentage of ideal (100 = at the bound)."""
    if not ideal:
        return None
    return 100.0 * achieved / ideal


def gap_pct(achieved: float, ideal: float | None) -> float | None:
    """Distance from the bound in percent: -20 means 20 % below it."""
    pct = percent_of(achieved, ideal)
    return None if pct is None else pct - 100.0


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def ideal_rps(
    scenario: str,
    users: int,
    capacity: int | None,
    *,
    io_ms: float,
    stream_s: float,
    ws_rate: float,
    poll_wait_s: float = 0.0,
) -> float | None:
    """The bound each scenario can be held to, or None where none is known (hello, cpu).

    io: Little's law with the requested wait as service time; stream: the same with the whole
    stream as service time (a sync worker is held for it); poll: the same with the wait for
    the next message (or the timeout, if sooner) as service time, since every waiting poll ends
    when a message comes; ws_echo: the offered rate, users x messages per second (an open loop
    per user). ``capacity`` None: unbounded (an event loop).
    """
    if scenario == "io":  # ms=0 is allowed by the services: no wait, no bound
        return littles_law_ideal(users, io_ms / 1000.0, capacity) if io_ms > 0 else None
    if scenario == "stream":
        return littles_law_ideal(users, stream_s, capacity) if stream_s > 0 else None
    if scenario == "poll":
        return littles_law_ideal(users, poll_wait_s, capacity) if poll_wait_s > 0 else None
    if scenario == "ws_echo":
        return users * ws_rate
    return None


@dataclass(frozen=True)
class Saturation:
    """Where throughput stopped following the load, or how far it kept up (``saturated`` False).

    With ``saturated``, ``from_level``/``to_level`` are the first pair of levels whose marginal
    scaling fell below SATURATION_EFFICIENCY; without, they are the last pair.
    """

    saturated: bool
    from_level: float
    to_level: float
    rps_before: float
    rps_after: float
    efficiency: float
    at_first_level: bool
    peak_level: float
    peak_rps: float


def open_bound(
    scenario: str, offered: float, capacity: int | None, *, io_ms: float, stream_s: float
) -> float:
    """The most an open-model step can be answered at: the offered rate, or less where the
    server's capacity caps it (io: capacity / wait, as in the closed model)."""
    service_s = io_ms / 1000 if scenario == "io" else stream_s if scenario == "stream" else 0
    if capacity is None or service_s <= 0:
        return offered
    return min(offered, capacity / service_s)


def saturation(levels: Iterable[tuple[float, float]]) -> Saturation | None:
    """Where throughput stops following the users (or the offered rate).

    ``levels``: (level, throughput) pairs. Marginal efficiency between consecutive levels is
    (rps ratio - 1) / (level ratio - 1): 1 = throughput grew with the level, 0 = flat. The knee is
    the first pair below SATURATION_EFFICIENCY. Returns None with fewer than two levels.
    """
    points = sorted((u, r) for u, r in levels if u > 0)
    if len(points) < 2:
        return None
    peak_level, peak_rps = max(points, key=lambda p: p[1])
    pairs = list(zip(points, points[1:], strict=False))
    for (u0, r0), (u1, r1) in pairs:
        eff = _efficiency(u0, r0, u1, r1)
        if eff < SATURATION_EFFICIENCY:
            return Saturation(True, u0, u1, r0, r1, eff, u0 == points[0][0], peak_level, peak_rps)
    (u0, r0), (u1, r1) = pairs[-1]
    eff = _efficiency(u0, r0, u1, r1)
    return Saturation(False, u0, u1, r0, r1, eff, False, peak_level, peak_rps)


def _efficiency(u0: float, r0: float, u1: float, r1: float) -> float:
    users_gain = u1 / u0 - 1
    rps_gain = (r1 / r0 - 1) if r0 > 0 else 0.0
    return rps_gain / users_gain if users_gain else 0.0


# ------------------------------------------------------------------ client/server cross-check


@dataclass(frozen=True)
class CrossCheck:
    """What the client sent against what the server counted (``server`` None: unknown)."""

    client_started: int
    client_completed: int
    gateway_errors: int
    server: int | None
    tolerance: float
    low: float
    high: float

    @property
    def ok(self) -> bool | None:
        return None if self.server is None else self.low <= self.server <= self.high

    @property
    def diff(self) -> int | None:
        return None if self.server is None else self.server - self.client_completed

    @property
    def diff_pct(self) -> float | None:
        if self.diff is None or not self.client_completed:
            return None
        return 100.0 * self.diff / self.client_completed

    @property
    def excess(self) -> float:
        """How far the server's count falls outside [completed - gateway errors, started]."""
        if self.server is None:
            return 0
        floor = self.client_completed - self.gateway_errors
        return max(0, floor - self.server, self.server - self.client_started)

    def to_dict(self) -> dict:
        out = asdict(self) | {"ok": self.ok, "diff": self.diff, "diff_pct": self.diff_pct}
        return out if self.server is None else out | {"excess": self.excess}


def crosscheck(
    started: int,
    completed: int,
    server: int | None,
    gateway_errors: int = 0,
    rel_tol: float = CROSSCHECK_REL_TOL,
    abs_tol: int = CROSSCHECK_ABS_TOL,
) -> CrossCheck:
    """Compare what the client sent with what the server counted.

    The server's count must lie in [completed - gateway_errors, started], widened by
    max(abs_tol, rel_tol x completed): requests the client abandoned when a run stopped may or
    may not have been counted, and 502/503/504 answers may come from nginx alone.
    """
    tol = max(abs_tol, rel_tol * completed)
    low = completed - gateway_errors - tol
    return CrossCheck(started, completed, gateway_errors, server, tol, low, started + tol)


@dataclass(frozen=True)
class CounterSeries:
    """One counter series' raw samples, and the times its target was scraped.

    Prometheus stores every series of a target with the scrape's timestamp, so a scrape without a
    sample of this series means the series did not exist then: a fresh server process creates a
    route's series with its first request, while the stored samples of an earlier process (the
    stack was restarted) are still in the range. Without ``scrapes`` every sample counts.
    """

    samples: tuple[tuple[float, float], ...]
    scrapes: tuple[float, ...] = ()

    def value_at(self, t: float) -> tuple[float, float | None]:
        """(value, sample time) at ``t``: the sample of the last scrape at or before t, or
        (0, None) when that scrape did not carry the series (absent counts as zero)."""
        last = None
        for ts, v in self.samples:
            if ts > t:
                break
            last = (ts, v)
        if last is None:
            return 0.0, None
        scrape = max((st for st in self.scrapes if st <= t), default=None)
        if scrape is not None and scrape > last[0]:
            return 0.0, None  # scraped since without this series: it is gone
        return last[1], last[0]

    def reset_between(self, t0: float, t1: float) -> bool:
        """Whether the counter went down in (t0, t1], counting from its value at t0."""
        previous, _ = self.value_at(t0)
        for ts, v in self.samples:
            if t0 < ts <= t1:
                if v < previous:
                    return True
                previous = v
        return False

    def stamps(self) -> list[float]:
        return list(self.scrapes) or [t for t, _ in self.samples]


@dataclass(frozen=True)
class CounterDelta:
    """How much a set of counter series grew over a block (None, with a reason, if unknown)."""

    value: int | None
    reason: str | None = None
    before_t: float | None = None
    after_t: float | None = None


def counter_delta(
    series: Sequence[CounterSeries], t0: float, t1: float, t_next: float | None = None
) -> CounterDelta:
    """Increase of the summed series over [t0, t1] from raw scrape samples.

    Needs the service idle (for this route) at both ends: "before" is each series' value at the
    last scrape at or before t0 (0 where the series did not exist: a fresh stack); "after" its
    value at the first scrape at or after t1, taken before t_next (when that route is loaded
    again). A counter that went down in between was reset: the server restarted during the run.
    """
    stamps = sorted({t for s in series for t in s.stamps()})
    after_t = next((t for t in stamps if t >= t1 and (t_next is None or t < t_next)), None)
    if after_t is None:
        return CounterDelta(None, "no scrape between the end of the run and the next load")
    total = 0.0
    before_ts = []
    for s in series:
        if s.reset_between(t0, after_t):
            return CounterDelta(None, "counter reset (server restarted?)")
        before, before_t = s.value_at(t0)
        after, _ = s.value_at(after_t)
        if after < before:
            return CounterDelta(None, "counter reset (series gone: server restarted?)")
        total += after - before
        before_ts.append(before_t)
    known = [t for t in before_ts if t is not None]
    return CounterDelta(int(round(total)), None, max(known) if known else None, after_t)


def window_rate(series: Sequence[CounterSeries], t0: float, t1: float) -> float | None:
    """Server-side rate over a measurement window, from the scrapes inside it.

    None when fewer than two scrapes fall in the window, they span under half of it, or a
    counter was reset in between.
    """
    inside = sorted({t for s in series for t in s.stamps() if t0 <= t <= t1})
    if len(inside) < 2:
        return None
    ta, tb = inside[0], inside[-1]
    if tb - ta < 0.5 * (t1 - t0) or any(s.reset_between(ta, tb) for s in series):
        return None
    return sum(s.value_at(tb)[0] - s.value_at(ta)[0] for s in series) / (tb - ta)


# ------------------------------------------------------------------ load-generator check


def loadgen_verdict(
    cpu_mean: float | None,
    cpu_warning: bool,
    achieved: float,
    ideal: float | None,
    in_flight_users: float | None,
    users: int,
    host_cpu_mean: float | None = None,
) -> tuple[bool, list[str]]:
    """Whether a step measured the load generator rather than the server, and why."""
    reasons = []
    if cpu_warning:
        reasons.append("Locust raised its CPU warning (>90 %)")
    if cpu_mean is not None and cpu_mean >= LOADGEN_CPU_LIMIT:
        reasons.append(f"Locust used {cpu_mean:.0f} % of a core")
    if (
        ideal
        and cpu_mean is not None
        and cpu_mean >= LOADGEN_BUSY_CPU
        and achieved < LOADGEN_SHORTFALL * ideal
        and in_flight_users is not None
        and in_flight_users < IN_FLIGHT_SHORTFALL * users
    ):
        reasons.append(
            f"{achieved:.0f}/s is {100 * achieved / ideal:.0f} % of the {ideal:.0f}/s bound with "
            f"Locust busy ({cpu_mean:.0f} %) and only {in_flight_users:.1f} of {users} users "
            "waiting on the server"
        )
    if host_cpu_mean is not None and host_cpu_mean >= HOST_CPU_LIMIT:
        reasons.append(
            f"host CPU {host_cpu_mean:.0f} % busy: Locust and the servers compete for the cores"
        )
    return bool(reasons), reasons


def short_reason(reason: str) -> str:
    """A table-sized version of a loadgen_verdict reason."""
    if reason.startswith("host CPU"):
        return reason.split(":")[0]
    if reason.startswith("Locust used"):
        return "Locust " + reason.split("used ")[1].replace(" of a core", " CPU")
    if reason.startswith("Locust raised"):
        return "Locust CPU warning"
    return "below bound while Locust busy"
