"""``python -m loadtests.bench.edge`` (``make bench-edge``): HTTP/1.1 and HTTP/2 at the edge.

The same requests, at the same concurrency, to each service through nginx three ways: HTTP/1.1
on the plain port, HTTP/1.1 over TLS and HTTP/2 over TLS (both on HTTPS_PORT), with h2load
(Debian's nghttp2-client). Prints requests/s side by side and the HTTP/2 / HTTP/1.1-over-TLS
ratio per service and path, and writes results.json. Behind nginx both services still speak
HTTP/1.1 to nginx: what changes is only the client's side of the edge.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

#: (label, URL scheme, h2load protocol flags); concurrency is filled in per run.
MODES = ("http1", "http1_tls", "h2_tls")
DEFAULT_PATHS = ("/hello", "/io?ms=50")
_RPS = re.compile(r"finished in [^,]+, ([0-9.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_LATENCY = re.compile(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)")


@dataclass(frozen=True)
class EdgeOptions:
    http_url: str
    tls_url: str
    services: tuple[str, ...]
    paths: tuple[str, ...]
    concurrency: int
    streams: int  # HTTP/2 streams per connection; connections = concurrency / streams
    duration_s: int
    warmup_s: int
    out: Path


@dataclass(frozen=True)
class EdgeStep:
    service: str
    path: str
    mode: str
    connections: int
    streams_per_connection: int
    rps: float
    succeeded: int
    status_5xx: int
    mean_latency: str


def h2load_command(opts: EdgeOptions, service: str, path: str, mode: str) -> tuple[list, int, int]:
    binary = shutil.which("h2load")
    if binary is None:
        raise SystemExit("bench-edge: h2load is not installed (Debian: nghttp2-client; make setup)")
    base = opts.http_url if mode == "http1" else opts.tls_url
    if mode == "h2_tls":
        connections, streams, flags = opts.concurrency // opts.streams, opts.streams, []
    else:
        connections, streams, flags = opts.concurrency, 1, ["--h1"]
    command = [
        binary,
        *flags,
        f"--clients={connections}",
        f"--max-concurrent-streams={streams}",
        f"--threads={min(2, connections)}",
        f"--duration={opts.duration_s}",
        f"--warm-up-time={opts.warmup_s}",
        f"{base}/{service}{path}",
    ]
    return command, connections, streams


def parse_h2load(output: str) -> tuple[float, int, int, str]:
    rps = _RPS.search(output)
    requests = _REQUESTS.search(output)
    status = _STATUS.search(output)
    latency = _LATENCY.search(output)
    if not (rps and requests and status):
        raise ValueError(f"unexpected h2load output:\n{output[-2000:]}")
    mean = latency.group(3) if latency else "n/a"
    return float(rps.group(1)), int(requests.group(4)), int(status.group(4)), mean


def run(opts: EdgeOptions, say=print) -> list[EdgeStep]:
    steps = []
    for service in opts.services:
        for path in opts.paths:
            for mode in MODES:
                command, connections, streams = h2load_command(opts, service, path, mode)
                result = subprocess.run(command, capture_output=True, text=True, timeout=600)
                rps, ok, errors, mean = parse_h2load(result.stdout)
                step = EdgeStep(service, path, mode, connections, streams, rps, ok, errors, mean)
                steps.append(step)
                say(f"bench-edge: {service}{path:<12} {mode:<10} {rps:9.0f} req/s  mean {mean}")
    return steps


def ratios(steps: list[EdgeStep]) -> list[str]:
    by = {(s.service, s.path, s.mode): s for s in steps}
    lines = []
    for service, path in dict.fromkeys((s.service, s.path) for s in steps):
        h1, h1_tls, h2 = (by[service, path, mode].rps for mode in MODES)
        lines.append(
            f"{service}{path}: HTTP/1.1 {h1:.0f}, HTTP/1.1+TLS {h1_tls:.0f}, HTTP/2+TLS {h2:.0f} "
            f"req/s; HTTP/2 / HTTP/1.1+TLS = {h2 / h1_tls:.2f}, HTTP/2+TLS / HTTP/1.1 = "
            f"{h2 / h1:.2f}"
        )
    return lines


def parse(argv: list[str] | None) -> EdgeOptions:
    from stackctl.addresses import running_stack_env
    from stackctl.settings import load_settings

    env = os.environ.get
    stack = running_stack_env(load_settings(env("STACK_PROFILE") or "default"))
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.edge")
    parser.add_argument("--url", default=env("BENCH_URL") or stack["PUBLIC_URL"])
    parser.add_argument("--tls-url", default=env("BENCH_TLS_URL") or stack["TLS_URL"])
    parser.add_argument("--services", default=env("BENCH_TARGETS", "wsgi,asgi"))
    parser.add_argument("--paths", default=env("BENCH_EDGE_PATHS", ",".join(DEFAULT_PATHS)))
    parser.add_argument("--concurrency", type=int, default=int(env("BENCH_EDGE_CONCURRENCY", 32)))
    parser.add_argument("--streams", type=int, default=int(env("BENCH_EDGE_STREAMS", 8)))
    parser.add_argument("--duration", type=int, default=int(env("BENCH_DURATION", 10)))
    parser.add_argument("--warmup", type=int, default=int(env("BENCH_WARMUP", 2)))
    parser.add_argument("--out", default=env("BENCH_OUT", "reports"))
    args = parser.parse_args(argv)
    if args.streams < 1 or args.concurrency % args.streams:
        parser.error("--concurrency must be a multiple of --streams")
    services = tuple(s for s in args.services.split(",") if s)
    if not set(services) <= {"wsgi", "asgi"}:
        parser.error("--services: a comma list of wsgi, asgi")
    return EdgeOptions(
        http_url=args.url.rstrip("/"),
        tls_url=args.tls_url.rstrip("/"),
        services=services,
        paths=tuple(p for p in args.paths.split(",") if p),
        concurrency=args.concurrency,
        streams=args.streams,
        duration_s=args.duration,
        warmup_s=args.warmup,
        out=Path(args.out),
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    steps = run(opts)
    for line in ratios(steps):
        print(f"bench-edge: {line}")
    folder = opts.out / f"{datetime.now():%Y%m%d-%H%M%S}-edge"
    folder.mkdir(parents=True, exist_ok=True)
    document = {
        "options": {**asdict(opts), "out": str(opts.out)},
        "steps": list(map(asdict, steps)),
    }
    (folder / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"bench-edge: written {folder / 'results.json'}")
    return 0 if all(step.status_5xx == 0 for step in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
