"""The bench's report maths: Little's law, saturation, ratios, cross-check, load-generator check.

Pure functions over plain numbers and dicts (no Locust, no I/O), unit tested in
tests/unit/test_bench_report.py. Step rows are the dicts the driver writes into results.json
(keys used here: scenario, target, users, rps, p50_ms, p95_ms, p99_ms, avg_ms, ideal_rps,
loadgen_bound, ...).

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

from loadtests.bench import numbers

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


def capacity_of(health: dict, target: str) -> int | None:
    """Concurrent requests a service can run: WSGI workers x threads; ASGI unbounded (None)."""
    if target == "asgi":
        return None
    workers = int(health.get("workers") or 0)
    threads = int(health.get("threads") or 1)
    if workers <= 0:
        raise ValueError(f"healthz of {target} reports no workers: {health!r}")
    return workers * max(threads, 1)


def ideal_rps(
    scenario: str,
    users: int,
    capacity: int | None,
    *,
    io_ms: float,
    stream_s: float,
    ws_rate: float,
) -> float | None:
    """The bound each scenario can be held to, or None where none is known (hello, cpu).

    io: Little's law with the requested wait as service time; stream: the same with the whole
    stream as service time (a sync worker is held for it); ws_echo: the offered rate, users x
    messages per second (an open loop per user).
    """
    if scenario == "io":  # ms=0 is allowed by the services: no wait, no bound
        return littles_law_ideal(users, io_ms / 1000.0, capacity) if io_ms > 0 else None
    if scenario == "stream":
        return littles_law_ideal(users, stream_s, capacity) if stream_s > 0 else None
    if scenario == "ws_echo":
        return users * ws_rate
    return None


def saturation(levels: Iterable[tuple[float, float]]) -> dict | None:
    """Where throughput stops following the users.

    ``levels``: (users, throughput) pairs. Marginal efficiency between consecutive levels is
    (rps ratio - 1) / (users ratio - 1): 1 = throughput grew with the users, 0 = flat. The knee is
    the first pair below SATURATION_EFFICIENCY. Returns None with fewer than two levels.
    """
    points = sorted((u, r) for u, r in levels if u > 0)
    if len(points) < 2:
        return None
    efficiencies = []
    for (u0, r0), (u1, r1) in zip(points, points[1:], strict=False):
        users_gain = u1 / u0 - 1
        rps_gain = (r1 / r0 - 1) if r0 > 0 else 0.0
        efficiencies.append((u0, u1, r0, r1, rps_gain / users_gain if users_gain else 0.0))
    peak_users, peak_rps = max(points, key=lambda p: p[1])
    for u0, u1, r0, r1, eff in efficiencies:
        if eff < SATURATION_EFFICIENCY:
            return {
                "saturated": True,
                "from_users": u0,
                "to_users": u1,
                "rps_before": r0,
                "rps_after": r1,
                "efficiency": eff,
                "at_first_level": u0 == points[0][0],
                "peak_users": peak_users,
                "peak_rps": peak_rps,
            }
    return {
        "saturated": False,
        "max_users": points[-1][0],
        "efficiency": efficiencies[-1][4],
        "peak_users": peak_users,
        "peak_rps": peak_rps,
    }


# ------------------------------------------------------------------ client/server cross-check


def crosscheck(
    started: int,
    completed: int,
    server: int | None,
    gateway_errors: int = 0,
    rel_tol: float = CROSSCHECK_REL_TOL,
    abs_tol: int = CROSSCHECK_ABS_TOL,
) -> dict:
    """Compare what the client sent with what the server counted.

    The server's count must lie in [completed - gateway_errors, started], widened by
    max(abs_tol, rel_tol x completed): requests the client abandoned when a run stopped may or
    may not have been counted, and 502/503/504 answers may come from nginx alone.
    """
    tol = max(abs_tol, rel_tol * completed)
    low = completed - gateway_errors - tol
    high = started + tol
    out = {
        "client_started": started,
        "client_completed": completed,
        "gateway_errors": gateway_errors,
        "server": server,
        "tolerance": tol,
        "low": low,
        "high": high,
    }
    if server is None:
        return out | {"ok": None, "diff": None, "diff_pct": None}
    diff = server - completed
    # How far the server's count falls outside [completed - gateway errors, started].
    excess = max(0, (completed - gateway_errors) - server, server - started)
    return out | {
        "ok": low <= server <= high,
        "diff": diff,
        "diff_pct": 100.0 * diff / completed if completed else None,
        "excess": excess,
    }


def sum_series(series: Iterable[Sequence[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Sum several counter series into one, at every timestamp any of them was sampled.

    A series counts as 0 before its first sample (a label set appears with its first request)
    and keeps its last value between samples.
    """
    series = [sorted(s) for s in series if s]
    stamps = sorted({t for s in series for t, _ in s})
    out = []
    idx = [0] * len(series)
    current = [0.0] * len(series)
    for t in stamps:
        for k, s in enumerate(series):
            while idx[k] < len(s) and s[idx[k]][0] <= t:
                current[k] = s[idx[k]][1]
                idx[k] += 1
        out.append((t, sum(current)))
    return out


def counter_delta(
    samples: Sequence[tuple[float, float]],
    t0: float,
    t1: float,
    t_next: float | None = None,
) -> dict:
    """Increase of a (summed) counter over [t0, t1] from raw scrape samples.

    Needs the service idle (for this route) at both ends: "before" is the last sample at or
    before t0; "after" the first sample at or after t1, taken before t_next (when that route is
    loaded again). No sample before t0 means the counter did not exist yet: 0.
    """
    before = 0.0
    before_t = None
    after = None
    after_t = None
    last = None
    for t, v in samples:
        if last is not None and v < last:
            return {"value": None, "reason": "counter reset (server restarted?)"}
        last = v
        if t <= t0:
            before, before_t = v, t
        elif t >= t1 and after is None and (t_next is None or t < t_next):
            after, after_t = v, t
    if after is None:
        return {"value": None, "reason": "no scrape between the end of the run and the next load"}
    return {"value": int(round(after - before)), "before_t": before_t, "after_t": after_t}


def window_rate(samples: Sequence[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Server-side rate over a measurement window, from the scrapes inside it.

    None when fewer than two scrapes fall in the window, or they span under half of it.
    """
    inside = [(t, v) for t, v in samples if t0 <= t <= t1]
    if len(inside) < 2:
        return None
    (ta, va), (tb, vb) = inside[0], inside[-1]
    if tb - ta < 0.5 * (t1 - t0) or vb < va:
        return None
    return (vb - va) / (tb - ta)


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


# ------------------------------------------------------------------ findings


_fmt_rate = numbers.rate
_fmt_ms = numbers.ms


def _by(steps: Iterable[dict], scenario: str, target: str) -> list[dict]:
    return sorted(
        (s for s in steps if s["scenario"] == scenario and s["target"] == target),
        key=lambda s: s["users"],
    )


def findings(results: dict) -> list[str]:
    """Statements computed from the numbers; no canned conclusions."""
    steps = [s for s in results.get("steps", []) if s.get("rps") is not None]
    meta = results.get("meta", {})
    out: list[str] = []
    scenarios = list(dict.fromkeys(s["scenario"] for s in steps))
    capacity = meta.get("capacity", {})

    for scenario in scenarios:
        unit = "messages" if scenario.startswith("ws_") else "requests"
        if scenario == "stream":
            unit = "streams"
        for target in ("wsgi", "asgi"):
            rows = _by(steps, scenario, target)
            if not rows:
                continue
            sat = saturation((r["users"], r["rps"]) for r in rows)
            label = f"{scenario}/{target.upper()}"
            if sat and sat["saturated"]:
                where = (
                    f"already at the lowest level ({sat['from_users']} users)"
                    if sat["at_first_level"]
                    else f"between {sat['from_users']} and {sat['to_users']} users"
                )
                out.append(
                    f"{label}: throughput stops following the users {where}: "
                    f"{_fmt_rate(sat['rps_before'])} -> {_fmt_rate(sat['rps_after'])} while users "
                    f"went x{sat['to_users'] / sat['from_users']:.1f} (marginal scaling "
                    f"{sat['efficiency']:.2f}); peak {_fmt_rate(sat['peak_rps'])} {unit} "
                    f"at {sat['peak_users']} users."
                )
            elif sat:
                out.append(
                    f"{label}: no saturation up to {sat['max_users']} users (last step scaled "
                    f"{sat['efficiency']:.2f} of linear); peak {_fmt_rate(sat['peak_rps'])} {unit}."
                )
            bound_rows = [r for r in rows if r.get("ideal_rps")]
            if scenario in ("io", "stream") and bound_rows:
                cap = capacity.get(target)
                cap_text = f"capacity {cap}" if cap else "capacity unbounded"
                parts = []
                for r in bound_rows:
                    pct = percent_of(r["rps"], r["ideal_rps"])
                    mark = " [load-generator bound]" if r.get("loadgen_bound") else ""
                    parts.append(
                        f"{r['users']} users {_fmt_rate(r['rps'])} = {pct:.0f} % of "
                        f"{_fmt_rate(r['ideal_rps'])}{mark}"
                    )
                out.append(f"{label} vs Little's law ({cap_text}): " + "; ".join(parts) + ".")
                top = bound_rows[-1]
                if cap and top["users"] > cap and top.get("avg_ms"):
                    service_s = top["ideal_rps"] and min(top["users"], cap) / top["ideal_rps"]
                    predicted = littles_law_latency(top["users"], service_s, cap) * 1000
                    text = (
                        f"{label}: at {top['users']} users only {cap} requests run at once, so the "
                        f"rest queue: Little's law predicts a mean latency of "
                        f"{_fmt_ms(predicted)} (users / bound); measured {_fmt_ms(top['avg_ms'])} "
                        f"(p95 {_fmt_ms(top.get('p95_ms'))})"
                    )
                    warmup = results.get("meta", {}).get("options", {}).get("warmup_s")
                    if warmup is not None and predicted / 1000 > warmup:
                        text += (
                            f"; the queue takes longer than the {warmup:g} s warm-up to build, so "
                            "this step is not at steady state and its latency is understated"
                        )
                    out.append(text + ".")

        pairs = []
        wsgi_rows = {r["users"]: r for r in _by(steps, scenario, "wsgi")}
        for r in _by(steps, scenario, "asgi"):
            w = wsgi_rows.get(r["users"])
            if not w:
                continue
            rr = ratio(r["rps"], w["rps"])
            pr = ratio(r.get("p95_ms"), w.get("p95_ms"))
            if rr is None:
                continue
            text = f"{r['users']} users x{rr:.2f}"
            if pr is not None:
                text += f" (p95 {_fmt_ms(r.get('p95_ms'))} vs {_fmt_ms(w.get('p95_ms'))})"
            pairs.append(text)
        if pairs:
            out.append(f"{scenario}: ASGI/WSGI throughput ratio " + "; ".join(pairs) + ".")

    bound = [s for s in steps if s.get("loadgen_bound")]
    if bound:
        names = ", ".join(f"{s['scenario']}/{s['target']}@{s['users']}" for s in bound)
        out.append(
            f"{len(bound)} of {len(steps)} steps were limited by the load generator or the shared "
            f"host ({names}): their throughput is a lower bound for the server, not its limit."
        )
    else:
        out.append(
            f"No step was marked load-generator bound (Locust below {LOADGEN_CPU_LIMIT:.0f} % "
            f"of a core and host below {HOST_CPU_LIMIT:.0f} % CPU)."
        )

    checks = [b["crosscheck"] for b in results.get("blocks", []) if b.get("crosscheck")]
    done = [c for c in checks if c.get("ok") is not None]
    if done:
        bad = [c for c in done if not c["ok"]]
        exact = sum(1 for c in done if c["server"] == c["client_started"])
        worst = max(done, key=lambda c: c.get("excess", 0))
        out.append(
            f"Client vs server counts (Prometheus): {len(done) - len(bad)} of {len(done)} runs "
            f"within tolerance; in {exact} the servers counted exactly the requests the client "
            f"started; largest count outside [completed, started]: {worst.get('excess', 0):g}."
        )
    elif checks:
        out.append("Client vs server counts: not available (see the cross-check table).")
    return out
