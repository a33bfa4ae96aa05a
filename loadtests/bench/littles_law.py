"""``python -m loadtests.bench.littles_law``: does each variant serve what its capacity promises?

Little's law: with C requests able to run at once and each taking W seconds, a server completes
at most C / W requests per second. With N clients always waiting, what can run is min(N, C).
For every variant the running stack lists in ``/variants.json``, wrk holds N connections
(default 50) on ``<prefix>/io?ms=100`` through nginx, and the measured rate is set against
min(N, capacity) / 0.1 s (N / 0.1 s where the server has no bound of its own). wrk is an
independent load tool: neither Locust nor the services' own metrics are involved.

Writes ``littles_law.json`` and ``littles_law.png`` (measured vs bound, one bar pair per
variant) into ``<out>/<timestamp>-littles-law/``, and prints the table.

Exit codes: 0 done (every variant within the band, or --no-strict); 1 a variant outside the
band, or wrk failed; 2 bad options, wrk missing, or no stack answering.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from loadtests.bench.overhead import RunError, parse_wrk
from loadtests.bench.targets import Target, TargetError, fetch_running

IO_MS = 100
# The band the measured rate must fall in, relative to the bound: queueing and proxying cost a
# little (below), and nothing can beat the bound by much (above: clock and sampling slack).
BAND_LOW = -0.20
BAND_HIGH = 0.15


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Options:
    url: str
    connections: int
    duration_s: int
    warmup_s: int
    names: tuple[str, ...]  # empty: every running variant
    out: Path
    strict: bool


@dataclass(frozen=True)
class VariantRate:
    name: str
    interface: str
    server: str
    worker_class: str
    capacity: int | None
    concurrent: int  # min(connections, capacity): what can run at once
    bound_rps: float
    measured_rps: float
    requests: int
    errors: int

    @property
    def ratio(self) -> float:
        return self.measured_rps / self.bound_rps

    @property
    def within_band(self) -> bool:
        return 1 + BAND_LOW <= self.ratio <= 1 + BAND_HIGH and not self.errors

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ratio": round(self.ratio, 3), "within_band": self.within_band}


def bound(connections: int, capacity: int | None, io_s: float = IO_MS / 1000) -> tuple[int, float]:
    concurrent = connections if capacity is None else min(connections, capacity)
    return concurrent, concurrent / io_s


def parse(argv: list[str] | None) -> Options:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench.littles_law",
        description="Each variant's /io?ms=100 throughput at N connections vs Little's law.",
    )
    parser.add_argument("--url", default=env("PUBLIC_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=int(env("BENCH_LITTLE_DURATION", "8")))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--variants", default=env("BENCH_LITTLE_VARIANTS", ""), help="names (default: all)"
    )
    parser.add_argument("--out", default=env("BENCH_OUT", "reports"))
    parser.add_argument("--no-strict", action="store_true", help="exit 0 even outside the band")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 1000:
        raise UsageError("--connections must be between 1 and 1000")
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        raise UsageError("--duration must be 1..600 s and --warmup 0..60 s")
    names = tuple(n.strip() for n in args.variants.split(",") if n.strip())
    return Options(
        url=args.url.rstrip("/"),
        connections=args.connections,
        duration_s=args.duration,
        warmup_s=args.warmup,
        names=names,
        out=Path(args.out),
        strict=not args.no_strict,
    )


def running_variants(url: str) -> tuple[Target, ...]:
    try:
        return fetch_running(url)
    except TargetError as error:
        raise UsageError(str(error)) from None


def choose(listed: tuple[Target, ...], names: tuple[str, ...]) -> list[Target]:
    if not names:
        return list(listed)
    by_name = {target.variant: target for target in listed}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise UsageError(
            f"not running: {', '.join(unknown)}; running: {', '.join(by_name)} "
            "(start more with VARIANTS=all make up)"
        )
    return [by_name[name] for name in names]


def wrk_rate(wrk: str, url: str, connections: int, duration_s: int) -> tuple[float, int, int]:
    threads = min(2, connections)
    # A queue of 50 in front of 2 sync workers waits 2.5 s: past wrk's default 2 s timeout.
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--timeout", "30s", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise RunError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    result = parse_wrk(done.stdout)
    return result.rps, result.requests, result.non_2xx + result.socket_errors


def measure(opts: Options, wrk: str, target: Target) -> VariantRate:
    url = f"{opts.url}{target.prefix}/io?ms={IO_MS}"
    concurrent, bound_rps = bound(opts.connections, target.capacity)
    if opts.warmup_s:
        wrk_rate(wrk, url, opts.connections, opts.warmup_s)
        # The requests wrk left queued when it stopped are still served (a sync worker cannot
        # tell that nginx gave up on them): let them drain, or they eat the measured window.
        time.sleep(opts.connections / bound_rps + 0.5)
    rps, requests, errors = wrk_rate(wrk, url, opts.connections, opts.duration_s)
    return VariantRate(
        name=target.variant,
        interface=target.interface,
        server=target.server,
        worker_class=target.worker_class,
        capacity=target.capacity,
        concurrent=concurrent,
        bound_rps=bound_rps,
        measured_rps=rps,
        requests=requests,
        errors=errors,
    )


def table(rates: list[VariantRate], connections: int) -> str:
    head = (
        f"| variant | server (workers model) | capacity | bound min({connections}, C)/0.1 s "
        "| measured req/s | ratio | within -20 %/+15 % |\n|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r.name} | {r.server} ({r.worker_class}) | "
        f"{'unbounded' if r.capacity is None else r.capacity} | {r.bound_rps:.0f} | "
        f"{r.measured_rps:.1f} | {r.ratio:.2f} | {'yes' if r.within_band else 'NO'}"
        + (f" ({r.errors} errors)" if r.errors else "")
        + " |"
        for r in rates
    ]
    return "\n".join([head, *rows])


def plot(rates: list[VariantRate], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in rates]
    positions = range(len(rates))
    figure, axes = plt.subplots(figsize=(max(6, len(rates) * 0.9), 4.5))
    axes.bar([p - 0.2 for p in positions], [r.bound_rps for r in rates], 0.4, label="bound")
    axes.bar([p + 0.2 for p in positions], [r.measured_rps for r in rates], 0.4, label="measured")
    axes.set_xticks(list(positions), names, rotation=35, ha="right")
    axes.set_ylabel("requests/s, /io?ms=100")
    axes.set_title("Little's law: min(connections, capacity) / 0.1 s vs measured")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse(argv)
        wrk = shutil.which("wrk")
        if wrk is None:
            raise UsageError("wrk is not installed (Debian package 'wrk'; make setup installs it)")
        entries = choose(running_variants(opts.url), opts.names)
    except UsageError as error:
        print(f"bench-littles-law: error: {error}", file=sys.stderr)
        return 2
    seconds = len(entries) * (opts.duration_s + opts.warmup_s)
    print(
        f"littles-law: {len(entries)} variants x {opts.duration_s + opts.warmup_s} s "
        f"(~{seconds} s), wrk {opts.connections} connections, {opts.url}",
        flush=True,
    )
    rates: list[VariantRate] = []
    try:
        for index, entry in enumerate(entries, 1):
            rate = measure(opts, wrk, entry)
            rates.append(rate)
            print(
                f"littles-law: [{index}/{len(entries)}] {rate.name}: {rate.measured_rps:.1f} "
                f"req/s of {rate.bound_rps:.0f} ({rate.ratio:.2f})",
                flush=True,
            )
    except RunError as error:
        print(f"bench-littles-law: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    run_dir = opts.out / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-littles-law"
    run_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "kind": "littles_law",
        "path": f"/io?ms={IO_MS}",
        "tool": "wrk",
        "connections": opts.connections,
        "duration_s": opts.duration_s,
        "band": [BAND_LOW, BAND_HIGH],
        "cpu_count": os.cpu_count(),
        "variants": [rate.to_dict() for rate in rates],
    }
    (run_dir / "littles_law.json").write_text(json.dumps(document, indent=2) + "\n")
    plot(rates, run_dir / "littles_law.png")
    print(table(rates, opts.connections))
    outside = [rate.name for rate in rates if not rate.within_band]
    print(f"littles-law: wrote {run_dir}/littles_law.json and littles_law.png")
    if outside:
        print(f"littles-law: outside the band: {', '.join(outside)}")
        return 1 if opts.strict else 0
    print(f"littles-law: all {len(rates)} variants within the band")
    return 0


if __name__ == "__main__":
    sys.exit(main())
