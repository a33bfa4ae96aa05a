"""``python -m loadtests.bench.capacity`` (``make bench-capacity``): the ``ws_capacity`` scenario.

Ramps concurrent WebSockets to /asgi/ws/echo through nginx up to a target, holds them all, makes
every one of them echo a message, then tries a few more beyond the target and records how each
extra handshake ended (past the edge's cap: 503 JSON, not a broken handshake). Prints and writes:
connections held, handshake latency percentiles, and the resident memory nginx's and Uvicorn's
workers gained per connection (native mode: read from /proc through the stack's pid files).

A process can hold only as many sockets as its open-file limit allows, so the connections are
spread over several client processes. They all connect from 127.0.0.1 (the address the per-client
limits exempt natively); toward one destination that leaves the ephemeral port range
(net.ipv4.ip_local_port_range, 28,232 ports by default) as the client's bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

#: Descriptors each client process keeps for itself (pipes, the event loop, Python's own files).
CLIENT_FD_RESERVE = 256
#: Handshakes in flight per client process: a ramp, not a flood of SYNs.
HANDSHAKES_IN_FLIGHT = 100
HANDSHAKE_TIMEOUT_S = 30.0
ECHO_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CapacityOptions:
    url: str  # ws://host:port/asgi/ws/echo
    target: int
    beyond: int
    processes: int
    state_dir: Path | None  # the native stack's state folder (pid files), if any
    out: Path


@dataclass
class ClientReport:
    opened: int = 0
    handshake_ms: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    echoed: int = 0
    echo_failures: int = 0
    beyond: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Rss:
    nginx_kib: int | None
    uvicorn_kib: int | None


@dataclass
class CapacityResult:
    target: int
    held: int
    echoed: int
    echo_failures: int
    handshake_failures: dict[str, int]
    handshake_ms: dict[str, float]
    beyond_attempted: int
    beyond_outcomes: dict[str, int]
    rss_before: Rss
    rss_held: Rss
    nginx_kib_per_connection: float | None
    uvicorn_kib_per_connection: float | None
    client_processes: int
    ramp_s: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def _outcome(exc: BaseException) -> str:
    """A short name for how a handshake ended: HTTP status, or the exception's class."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        body = bytes(getattr(response, "body", b"") or b"")
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "non-JSON body"
        return f"HTTP {status} {code}"
    return type(exc).__name__


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def _client(url: str, count: int, commands, reports) -> None:
    from websockets.asyncio.client import connect

    report = ClientReport()
    sockets = []
    gate = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)

    async def open_one(into: dict[str, int] | None) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                ws = await asyncio.wait_for(connect(url, open_timeout=None), HANDSHAKE_TIMEOUT_S)
            except (OSError, TimeoutError, Exception) as exc:  # every way a handshake can end
                target = report.failures if into is None else into
                name = _outcome(exc)
                target[name] = target.get(name, 0) + 1
                return
            if into is None:
                report.handshake_ms.append((time.perf_counter() - started) * 1000)
                report.opened += 1
            else:
                into["accepted"] = into.get("accepted", 0) + 1
            sockets.append(ws)

    async def echo(index: int, ws) -> bool:
        text = f"capacity-{os.getpid()}-{index}"
        try:
            await ws.send(text)
            return await asyncio.wait_for(ws.recv(), ECHO_TIMEOUT_S) == text
        except Exception:  # a closed or reset socket: counted, not raised
            return False

    await asyncio.gather(*(open_one(None) for _ in range(count)))
    reports.put(("opened", asdict(report)))
    loop = asyncio.get_running_loop()
    while True:
        command, argument = await loop.run_in_executor(None, commands.get)
        if command == "echo":
            results = await asyncio.gather(*(echo(i, ws) for i, ws in enumerate(list(sockets))))
            report.echoed = sum(results)
            report.echo_failures = len(results) - report.echoed
            reports.put(("echoed", asdict(report)))
        elif command == "beyond":
            await asyncio.gather(*(open_one(report.beyond) for _ in range(argument)))
            reports.put(("beyond", asdict(report)))
        else:
            break
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    reports.put(("closed", asdict(report)))


def _client_process(url: str, count: int, commands, reports) -> None:
    _raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_client(url, count, commands, reports))


def _rss_kib(pids: set[int]) -> int | None:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            return None
    return total if pids else None


def measure_rss(state_dir: Path | None) -> Rss:
    """The summed RSS of nginx's and Uvicorn's workers, from the native stack's pid files."""
    if state_dir is None:
        return Rss(None, None)
    from stackctl import native, processes

    found: dict[str, int | None] = {}
    for name in ("nginx", "fastapi"):
        record = processes.read_pid(state_dir / "pids" / f"{name}.pid")
        found[name] = _rss_kib(native.workers(record.pid)) if processes.is_alive(record) else None
    return Rss(nginx_kib=found["nginx"], uvicorn_kib=found["fastapi"])


def _per_connection(before: int | None, after: int | None, held: int) -> float | None:
    if before is None or after is None or held <= 0:
        return None
    return (after - before) / held


def _collect(reports, expected: str, n: int) -> list[ClientReport]:
    collected = []
    while len(collected) < n:
        kind, data = reports.get(timeout=600)
        if kind == expected:
            collected.append(ClientReport(**data))
    return collected


def _merge(counts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for count in counts:
        for name, value in count.items():
            merged[name] = merged.get(name, 0) + value
    return merged


def run(opts: CapacityOptions, say=print) -> CapacityResult:
    ctx = multiprocessing.get_context("spawn")
    reports = ctx.Queue()
    commands = [ctx.Queue() for _ in range(opts.processes)]
    shares = [opts.target // opts.processes] * opts.processes
    for i in range(opts.target % opts.processes):
        shares[i] += 1
    rss_before = measure_rss(opts.state_dir)
    say(f"ws_capacity: {opts.target} WebSockets to {opts.url} from {opts.processes} processes")
    started = time.monotonic()
    workers = [
        ctx.Process(target=_client_process, args=(opts.url, share, queue, reports), daemon=True)
        for share, queue in zip(shares, commands, strict=True)
    ]
    for worker in workers:
        worker.start()
    try:
        opened = _collect(reports, "opened", opts.processes)
        ramp_s = time.monotonic() - started
        held = sum(r.opened for r in opened)
        say(f"ws_capacity: {held} open after {ramp_s:.1f} s; settling, then every one echoes")
        time.sleep(2)  # let the servers' buffers settle before reading RSS
        rss_held = measure_rss(opts.state_dir)
        for queue in commands:
            queue.put(("echo", None))
        echoed = _collect(reports, "echoed", opts.processes)
        commands[0].put(("beyond", opts.beyond))
        beyond = _collect(reports, "beyond", 1)[0].beyond
    finally:
        for queue in commands:
            queue.put(("close", None))
        for worker in workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
    latencies = [ms for r in opened for ms in r.handshake_ms]
    return CapacityResult(
        target=opts.target,
        held=held,
        echoed=sum(r.echoed for r in echoed),
        echo_failures=sum(r.echo_failures for r in echoed),
        handshake_failures=_merge([r.failures for r in opened]),
        handshake_ms={f"p{q}": percentile(latencies, q) for q in (50, 90, 99, 100)},
        beyond_attempted=opts.beyond,
        beyond_outcomes=beyond,
        rss_before=rss_before,
        rss_held=rss_held,
        nginx_kib_per_connection=_per_connection(rss_before.nginx_kib, rss_held.nginx_kib, held),
        uvicorn_kib_per_connection=_per_connection(
            rss_before.uvicorn_kib, rss_held.uvicorn_kib, held
        ),
        client_processes=opts.processes,
        ramp_s=ramp_s,
    )


def summary(result: CapacityResult) -> list[str]:
    def kib(value: float | None) -> str:
        return "n/a (no native pid files)" if value is None else f"{value:.1f} KiB"

    ms = result.handshake_ms
    return [
        f"held       {result.held} of {result.target} WebSockets at once "
        f"(ramp {result.ramp_s:.1f} s); failed handshakes: {result.handshake_failures or 'none'}",
        f"echo       {result.echoed} of {result.held} answered ({result.echo_failures} failed)",
        f"handshake  p50 {ms['p50']:.1f} ms, p90 {ms['p90']:.1f} ms, p99 {ms['p99']:.1f} ms, "
        f"max {ms['p100']:.1f} ms",
        f"memory     per connection: nginx {kib(result.nginx_kib_per_connection)}, "
        f"uvicorn {kib(result.uvicorn_kib_per_connection)}",
        f"beyond     {result.beyond_attempted} more handshakes: {result.beyond_outcomes}",
    ]


def _stack_env() -> dict[str, str]:
    """The running stack's addresses (stackctl.addresses), as `make bench` takes them."""
    from stackctl.addresses import running_stack_env
    from stackctl.settings import load_settings

    return running_stack_env(load_settings(os.environ.get("STACK_PROFILE") or "default"))


def _state_dir(raw: str | None, stack: dict[str, str]) -> Path | None:
    if raw == "none":
        return None
    if raw:
        return Path(raw)
    found = Path(stack["STATE_DIR"]) if stack.get("STATE_DIR") else None
    return found if found and (found / "pids" / "nginx.pid").exists() else None


def parse(argv: list[str] | None) -> CapacityOptions:
    parser = argparse.ArgumentParser(prog="python -m loadtests.bench.capacity")
    env = os.environ.get
    parser.add_argument("--url", default=env("BENCH_URL"), help="public URL of the stack")
    parser.add_argument("--connections", type=int, default=int(env("BENCH_WS_CONNECTIONS", 10000)))
    parser.add_argument("--beyond", type=int, default=int(env("BENCH_WS_BEYOND", 50)))
    parser.add_argument("--processes", type=int, default=int(env("BENCH_WS_PROCESSES", 0)))
    parser.add_argument("--state-dir", default=env("BENCH_STATE_DIR"))
    parser.add_argument("--out", default=env("BENCH_OUT", "reports"))
    args = parser.parse_args(argv)
    stack = _stack_env()
    url = args.url or stack["PUBLIC_URL"]
    if args.connections < 1 or args.beyond < 0:
        parser.error("--connections must be at least 1 and --beyond at least 0")
    per_process = _raise_nofile() - CLIENT_FD_RESERVE
    needed = math.ceil((args.connections + args.beyond) / per_process)
    # Two at least: the handshakes' TLS-free but CPU-bound client work then uses both cores.
    processes = args.processes or max(2, needed)
    if processes < needed:
        parser.error(f"{processes} processes hold at most {processes * per_process} sockets")
    ws_url = url.replace("http", "ws", 1).rstrip("/") + "/asgi/ws/echo"
    return CapacityOptions(
        url=ws_url,
        target=args.connections,
        beyond=args.beyond,
        processes=processes,
        state_dir=_state_dir(args.state_dir, stack),
        out=Path(args.out),
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    result = run(opts)
    lines = summary(result)
    for line in lines:
        print(f"ws_capacity: {line}")
    folder = opts.out / f"{datetime.now():%Y%m%d-%H%M%S}-ws_capacity"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
    print(f"ws_capacity: written {folder / 'results.json'}")
    return 0 if result.held == result.target and result.echoed == result.held else 1


if __name__ == "__main__":
    sys.exit(main())
