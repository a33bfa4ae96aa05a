"""``python -m loadtests.bench.overhead``: what the instrumentation costs on ``/hello``.

For each service, starts the instrumented app and a bare app of the same framework
(`loadtests.bench.bare_apps`) with the same launcher and server settings, on free loopback
ports, called directly (no nginx). wrk loads one side, then the other, alternating the order
each round; the ratio is instrumented/bare requests per second, per round and the median.

A round in which one worker of a side did nearly all of that side's work measured one core, not
the server's settings (Uvicorn's workers share one listening socket, and wrk's keep-alive
connections stay with the worker that accepted them): it is reported, left out of the medians,
and another round is run in its place (at most as many extra rounds as were asked for).

Writes ``overhead.json`` into the newest bench run folder (``<out>/latest``) and a line into its
report, or into a new ``<out>/<timestamp>-overhead/`` folder when there is no report yet.

Exit codes: 0 done; 2 bad options or wrk missing (nothing started); 1 a server or wrk failed;
130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi_app.settings import AsgiSettings
    from flask_app.settings import WsgiSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("flask", "fastapi")
VARIANTS = ("instrumented", "bare")
WRK_PACKAGE = "wrk"  # Debian package of the same name (make setup installs it)
HELLO_PATH = "/hello"
START_TIMEOUT_S = 30.0
MARK_BEGIN = "<!-- bench-overhead -->"
MARK_END = "<!-- /bench-overhead -->"


class UsageError(Exception):
    """Bad options: one line on stderr, exit code 2."""


class RunError(Exception):
    """A server did not start or wrk failed: exit code 1."""


@dataclass(frozen=True)
class OverheadOptions:
    rounds: int
    duration_s: int
    warmup_s: int
    connections: int
    threads: int
    services: tuple[str, ...]
    out: Path


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: int
    #: CPU time the server's processes spent per request (Linux /proc; None elsewhere).
    cpu_ms_per_request: float | None = None
    #: The busiest worker's share of the workers' CPU time in this run (Linux; None elsewhere).
    busiest_worker_share: float | None = None


def unbalanced_share(workers: int) -> float:
    """The busiest worker's CPU share from which a run counts as one worker's: halfway between
    an even spread (1/workers) and all of it."""
    return (1 + 1 / workers) / 2


@dataclass(frozen=True)
class RoundResult:
    index: int
    order: tuple[str, ...]  # which variant ran first
    instrumented: WrkResult
    bare: WrkResult
    workers: int = 1  # the server's worker processes, the same on both sides

    @property
    def unbalanced_sides(self) -> tuple[str, ...]:
        """The sides on which one worker did nearly all the work (none with one worker)."""
        if self.workers < 2:
            return ()
        bound = unbalanced_share(self.workers)
        return tuple(
            name
            for name, side in (("instrumented", self.instrumented), ("bare", self.bare))
            if side.busiest_worker_share is not None and side.busiest_worker_share >= bound
        )

    @property
    def balanced(self) -> bool:
        return not self.unbalanced_sides

    @property
    def ratio(self) -> float:
        return self.instrumented.rps / self.bare.rps if self.bare.rps else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """bare/instrumented CPU per request: the throughput ratio if CPU were all theirs."""
        bare, instrumented = self.bare.cpu_ms_per_request, self.instrumented.cpu_ms_per_request
        return bare / instrumented if bare and instrumented else None


@dataclass
class ServiceOverhead:
    service: str
    rounds: list[RoundResult] = field(default_factory=list)

    @property
    def counted_rounds(self) -> list[RoundResult]:
        """The balanced rounds; every round when none is (then the medians say so)."""
        balanced = [r for r in self.rounds if r.balanced]
        return balanced or self.rounds

    @property
    def left_out(self) -> list[int]:
        counted = {r.index for r in self.counted_rounds}
        return [r.index for r in self.rounds if r.index not in counted]

    @property
    def median_ratio(self) -> float:
        return statistics.median(r.ratio for r in self.counted_rounds)

    @property
    def median_cpu_ratio(self) -> float | None:
        ratios = [r.cpu_ratio for r in self.counted_rounds if r.cpu_ratio is not None]
        return statistics.median(ratios) if ratios else None

    def to_dict(self) -> dict:
        return {
            "service": self.service,
            "median_ratio": round(self.median_ratio, 4),
            "median_cpu_ratio": _rounded(self.median_cpu_ratio),
            "rounds_left_out": self.left_out,
            "rounds": [
                {
                    "round": r.index,
                    "order": list(r.order),
                    "ratio": round(r.ratio, 4),
                    "cpu_ratio": _rounded(r.cpu_ratio),
                    "workers": r.workers,
                    "unbalanced": list(r.unbalanced_sides),
                    "instrumented": asdict(r.instrumented),
                    "bare": asdict(r.bare),
                }
                for r in self.rounds
            ],
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _env_default(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _positive_int(name: str, low: int, high: int):
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{name} must be an integer between {low} and {high}, got {raw!r}"
            )
        return value

    return parse


def _services(raw: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [name for name in names if name not in SERVICES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"--services takes a comma list of {', '.join(SERVICES)}, got {raw!r}"
        )
    return names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


def parse(argv: list[str] | None = None) -> OverheadOptions:
    parser = _Parser(
        prog="python -m loadtests.bench.overhead",
        description="Instrumented vs bare /hello throughput, side by side, with wrk.",
    )
    env = _env_default
    parser.add_argument(
        "--rounds",
        type=_positive_int("--rounds", 1, 50),
        default=env("BENCH_OVERHEAD_ROUNDS", "3"),
        help="alternating rounds per service (BENCH_OVERHEAD_ROUNDS, default 3)",
    )
    parser.add_argument(
        "--duration",
        type=_positive_int("--duration", 1, 600),
        default=env("BENCH_OVERHEAD_DURATION", "10"),
        help="seconds of wrk per side and round (BENCH_OVERHEAD_DURATION, default 10)",
    )
    parser.add_argument(
        "--warmup",
        type=_positive_int("--warmup", 0, 60),
        default=env("BENCH_OVERHEAD_WARMUP", "2"),
        help="seconds of unmeasured load per server before the rounds (default 2)",
    )
    parser.add_argument(
        "--connections",
        type=_positive_int("--connections", 1, 10000),
        default=env("BENCH_OVERHEAD_CONNECTIONS", "32"),
        help="wrk connections (BENCH_OVERHEAD_CONNECTIONS, default 32)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int("--threads", 1, 64),
        default=env("BENCH_OVERHEAD_THREADS", "1"),
        help="wrk threads (default 1: leaves the cores to the servers)",
    )
    parser.add_argument(
        "--services",
        type=_services,
        default=env("BENCH_OVERHEAD_SERVICES", ",".join(SERVICES)),
        help="comma list of flask, fastapi (BENCH_OVERHEAD_SERVICES, default both)",
    )
    parser.add_argument(
        "--out", default=env("BENCH_OUT", "reports"), help="reports folder (BENCH_OUT)"
    )
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        raise UsageError("--connections must be at least --threads (wrk needs one per thread)")
    return OverheadOptions(
        rounds=args.rounds,
        duration_s=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        threads=args.threads,
        services=args.services,
        out=Path(args.out),
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One launcher process (Gunicorn master or the Uvicorn supervisor) and its workers."""

    service: str
    variant: str
    port: int
    process: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HELLO_PATH}"

    def stop(self) -> None:
        if self.process.poll() is None:
            # The launcher leads its own process group: the workers go with it.
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _command(service: str, variant: str) -> list[str]:
    if service == "flask":
        conf = REPO_ROOT / "services" / "flask_app" / "gunicorn.conf.py"
        command = [str(Path(sys.executable).parent / "gunicorn"), "-c", str(conf)]
        # The app on the command line wins over gunicorn.conf.py's `wsgi_app`.
        return command + (["loadtests.bench.bare_apps:create_flask()"] if variant == "bare" else [])
    factory = "loadtests.bench.bare_apps:create_fastapi" if variant == "bare" else None
    code = "import sys; from fastapi_app.serve import main; sys.exit(main(*sys.argv[1:]))"
    return [sys.executable, "-c", code] + ([factory] if factory else [])


def _environment(service: str, port: int, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    # Nothing listens there: the FastAPI chat bus retries in the background with a growing
    # backoff, and only /poll would contact it; /hello touches neither.
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    if service == "flask":
        env["WSGI_BIND"] = f"127.0.0.1:{port}"
        env["WSGI_METRICS_BIND"] = f"127.0.0.1:{free_port()}"
    else:
        env["ASGI_BIND"] = f"127.0.0.1:{port}"
        env["ASGI_METRICS_BIND"] = f"127.0.0.1:{free_port()}"
    return env


def start_server(service: str, variant: str, workdir: Path) -> Server:
    port = free_port()
    side = workdir / f"{service}-{variant}"
    side.mkdir(parents=True, exist_ok=True)
    log_path = side / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _command(service, variant),
            env=_environment(service, port, side),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(service, variant, port, process, log_path)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces


def process_cpu_s(root: int) -> dict[int, float] | None:
    """User + system CPU seconds of `root` and of each of its live children (the server's
    workers), by pid; None without /proc."""
    if not Path("/proc/self/stat").exists():
        return None
    seconds: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(entry.name)
        # fields[1] is the parent pid; fields[11], fields[12] are utime and stime in ticks.
        if fields and (int(entry.name) == root or int(fields[1]) == root):
            seconds[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return seconds


def tree_cpu_s(root: int) -> float | None:
    """User + system CPU seconds of `root` and its live children."""
    seconds = process_cpu_s(root)
    return None if seconds is None else sum(seconds.values())


def busiest_child_share(
    root: int, before: dict[int, float], after: dict[int, float]
) -> float | None:
    """The share of the children's CPU time between two readings that the busiest one spent."""
    spent = [after[pid] - before.get(pid, 0.0) for pid in after if pid != root]
    total = sum(spent)
    return max(spent) / total if total > 0 else None


def fetch_hello(url: str, timeout_s: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return response.read()


def wait_ready(server: Server) -> bytes:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            return fetch_hello(server.url)
        except OSError:
            time.sleep(0.2)
    tail = server.log_path.read_text(errors="replace")[-2000:]
    raise RunError(f"{server.service} ({server.variant}) did not answer {server.url}:\n{tail}")


_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


def parse_wrk(output: str) -> WrkResult:
    rps, total = _RPS.search(output), _TOTAL.search(output)
    if rps is None or total is None:
        raise RunError(f"wrk printed no throughput:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(wrk: str, server: Server, opts: OverheadOptions, duration_s: int) -> WrkResult:
    url = server.url
    root = server.process.pid
    cpu_before = process_cpu_s(root)
    command = [
        wrk,
        f"-t{opts.threads}",
        f"-c{opts.connections}",
        f"-d{duration_s}s",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60)
    cpu_after = process_cpu_s(root)
    if done.returncode != 0:
        raise RunError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
    result = parse_wrk(done.stdout)
    if cpu_before is None or cpu_after is None or not result.requests:
        return result
    cpu_ms = (sum(cpu_after.values()) - sum(cpu_before.values())) * 1000 / result.requests
    share = busiest_child_share(root, cpu_before, cpu_after)
    return dataclasses.replace(
        result,
        cpu_ms_per_request=round(cpu_ms, 5),
        busiest_worker_share=None if share is None else round(share, 4),
    )


def measure_service(
    service: str, opts: OverheadOptions, wrk: str, workdir: Path, say
) -> ServiceOverhead:
    workers = configured_workers(service)
    servers: dict[str, Server] = {}
    try:
        for variant in VARIANTS:
            servers[variant] = start_server(service, variant, workdir)
        bodies = {variant: wait_ready(server) for variant, server in servers.items()}
        if bodies["instrumented"] != bodies["bare"]:
            raise RunError(f"{service}: the bare app's /hello body differs: {bodies}")
        for variant in VARIANTS:
            if opts.warmup_s:
                run_wrk(wrk, servers[variant], opts, opts.warmup_s)
        result = ServiceOverhead(service)
        # An unbalanced round is run again (new connections, a new spread over the workers), up
        # to `rounds` extra runs in all: the medians get the rounds asked for when they can.
        max_runs = 2 * opts.rounds
        index = 0
        while index < max_runs and sum(r.balanced for r in result.rounds) < opts.rounds:
            index += 1
            # Alternate the order so a drift of the machine favours neither side.
            order = VARIANTS if index % 2 else tuple(reversed(VARIANTS))
            measured = {v: run_wrk(wrk, servers[v], opts, opts.duration_s) for v in order}
            round_ = RoundResult(index, order, measured["instrumented"], measured["bare"], workers)
            result.rounds.append(round_)
            counted = sum(r.balanced for r in result.rounds)
            say(
                f"overhead: {service} round {index} ({counted} of {opts.rounds} counted): "
                f"instrumented {round_.instrumented.rps:.0f} req/s, "
                f"bare {round_.bare.rps:.0f} req/s, ratio {round_.ratio:.3f}"
                + _cpu_text(round_.cpu_ratio)
                + _problems(round_)
                + _imbalance(round_)
            )
        return result
    finally:
        for server in servers.values():
            server.stop()


def _imbalance(round_: RoundResult) -> str:
    if round_.balanced:
        return ""
    sides = [
        f"{name}: one worker did {getattr(round_, name).busiest_worker_share:.0%}"
        for name in round_.unbalanced_sides
    ]
    return f" [unbalanced, left out of the median: {'; '.join(sides)} of the work]"


def _cpu_text(ratio: float | None) -> str:
    return "" if ratio is None else f" (CPU per request: ratio {ratio:.3f})"


def _problems(round_: RoundResult) -> str:
    bad = [
        f"{name}: {r.non_2xx} non-2xx, {r.socket_errors} socket errors"
        for name, r in (("instrumented", round_.instrumented), ("bare", round_.bare))
        if r.non_2xx or r.socket_errors
    ]
    return f" ({'; '.join(bad)})" if bad else ""


def _settings() -> tuple[WsgiSettings, AsgiSettings]:
    """Both services' settings, from the environment as the services read it."""
    from fastapi_app.settings import load_asgi_settings
    from flask_app.settings import load_wsgi_settings
    from gateway_common.settings import REDIS_URL_ENV

    # The broker's address is required to load the settings, and irrelevant to /hello.
    environ = {**os.environ, REDIS_URL_ENV: "redis://127.0.0.1:1/0"}
    return load_wsgi_settings(environ), load_asgi_settings(environ)


def configured_workers(service: str) -> int:
    wsgi, asgi = _settings()
    return wsgi.workers if service == "flask" else asgi.workers


def settings_line() -> str:
    """The server settings both sides share."""
    wsgi, asgi = _settings()
    return (
        f"Gunicorn {wsgi.worker_class}, {wsgi.workers} workers x {wsgi.threads} threads; "
        f"Uvicorn {asgi.workers} workers"
    )


def write_results(opts: OverheadOptions, results: list[ServiceOverhead]) -> Path:
    latest = opts.out / "latest"
    if (latest / "report.html").is_file():
        run_dir = latest.resolve()
    else:
        run_dir = opts.out / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-overhead"
        run_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "kind": "overhead",
        "path": HELLO_PATH,
        "tool": "wrk",
        "rounds": opts.rounds,
        "duration_s": opts.duration_s,
        "warmup_s": opts.warmup_s,
        "connections": opts.connections,
        "threads": opts.threads,
        "server_settings": settings_line(),
        "cpu_count": os.cpu_count(),
        "services": [result.to_dict() for result in results],
    }
    (run_dir / "overhead.json").write_text(json.dumps(document, indent=2) + "\n")
    line = summary_line(results, opts)
    for name in ("report.md", "report.html"):
        page = run_dir / name
        if page.is_file():
            add_report_line(page, line if name == "report.md" else _html(line))
    return run_dir


def summary_line(results: list[ServiceOverhead], opts: OverheadOptions) -> str:
    parts = [
        f"{r.service} {r.median_ratio:.2f} (rounds {', '.join(f'{x.ratio:.2f}' for x in r.rounds)}"
        + ("" if r.median_cpu_ratio is None else f"; CPU per request {r.median_cpu_ratio:.2f}")
        + _left_out_text(r)
        + ")"
        for r in results
    ]
    return (
        f"Instrumentation overhead on {HELLO_PATH}, instrumented/bare throughput, median of "
        f"{opts.rounds} alternating rounds of {opts.duration_s} s, wrk {opts.connections} "
        f"connections, direct (no nginx): {'; '.join(parts)}. Figures: overhead.json."
    )


def _left_out_text(result: ServiceOverhead) -> str:
    if not result.left_out:
        return ""
    rounds = ", ".join(str(index) for index in result.left_out)
    return f"; rounds {rounds} unbalanced, left out of the median"


def _median_note(result: ServiceOverhead) -> str:
    counted = len(result.counted_rounds)
    if result.left_out:
        return f" over {counted} of {len(result.rounds)} rounds (the others unbalanced)"
    if not any(r.balanced for r in result.rounds):
        return " (every round unbalanced: run more rounds)"
    return ""


def _html(line: str) -> str:
    import html

    return f"<p>{html.escape(line)}</p>"


def add_report_line(page: Path, line: str) -> None:
    """Put `line` at the end of the report, replacing the one a previous run put there."""
    text = page.read_text()
    start, end = text.find(MARK_BEGIN), text.find(MARK_END)
    if start != -1 and end != -1:
        text = text[:start] + text[end + len(MARK_END) :]
    block = f"{MARK_BEGIN}\n{line}\n{MARK_END}\n"
    closing = text.rfind("</body>")
    if closing == -1:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        text = text[:closing] + block + text[closing:]
    page.write_text(text)


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse(argv)
    except UsageError as exc:
        print(f"bench-overhead: error: {exc}", file=sys.stderr)
        return 2
    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            f"bench-overhead: error: wrk is not installed (Debian package {WRK_PACKAGE!r}; "
            "make setup installs it)",
            file=sys.stderr,
        )
        return 2

    def say(message: str) -> None:
        print(message, flush=True)

    results: list[ServiceOverhead] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-overhead-") as workdir:
            for service in opts.services:
                results.append(measure_service(service, opts, wrk, Path(workdir), say))
    except RunError as exc:
        print(f"bench-overhead: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    run_dir = write_results(opts, results)
    for result in results:
        say(
            f"overhead: {result.service} median ratio {result.median_ratio:.3f}"
            + _cpu_text(result.median_cpu_ratio)
            + _median_note(result)
        )
    say(f"overhead: wrote {run_dir / 'overhead.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
