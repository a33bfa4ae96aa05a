"""The load a lab sends: bounded bursts, WebSocket pings, held streams, slow sockets.

Everything here is bounded in count and time and talks to loopback addresses the stack gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import websockets

#: No lab request may take longer than this (the longest lab wait is a few seconds).
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Timing:
    """One request of a burst: when it finished, relative to the burst's start."""

    status: int | str
    done_s: float
    server_ms: float | None = None


Progress = Callable[[int, int, float], None]


async def burst(
    base_url: str, path: str, n: int, progress: Progress | None = None
) -> tuple[list[Timing], float]:
    """N concurrent GETs of ``path``, all sent at once; their timings and the makespan (s)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as c:
        # One warm connection per request first, so the burst measures the server, not connects.
        await asyncio.gather(*(c.get(_health(path)) for _ in range(n)))
        done = 0
        started = time.monotonic()

        async def one() -> Timing:
            nonlocal done
            try:
                response = await c.get(path)
                status: int | str = response.status_code
                server_ms = _server_ms(response)
            except httpx.HTTPError as exc:
                status, server_ms = type(exc).__name__, None
            elapsed = time.monotonic() - started
            done += 1
            if progress:
                progress(done, n, elapsed)
            return Timing(status, elapsed, server_ms)

        timings = await asyncio.gather(*(one() for _ in range(n)))
        return list(timings), time.monotonic() - started


def _health(path: str) -> str:
    """``/wsgi/io?ms=5`` -> ``/wsgi/healthz``: a cheap request on the same service."""
    return "/" + path.lstrip("/").split("/", 1)[0] + "/healthz"


def _server_ms(response: httpx.Response) -> float | None:
    with contextlib.suppress(ValueError, AttributeError):
        doc = response.json()
        value = doc.get("elapsed_ms", doc.get("waited_ms"))
        return float(value) if value is not None else None
    return None


def waves(done_s: list[float], gap_s: float) -> list[int]:
    """Completion times grouped into waves: a new wave starts after a pause longer than gap_s."""
    sizes: list[int] = []
    previous: float | None = None
    for moment in sorted(done_s):
        if previous is None or moment - previous > gap_s:
            sizes.append(0)
        sizes[-1] += 1
        previous = moment
    return sizes


async def get(base_url: str, path: str, timeout_s: float) -> tuple[int | str, float]:
    """One GET on a fresh connection: its status (or error name) and how long it took."""
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s) as client:
            status: int | str = (await client.get(path)).status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, time.monotonic() - started


@dataclass
class Pinger:
    """WebSocket echo pings on one socket, every ``interval_s``; records each round trip."""

    socket: websockets.ClientConnection
    interval_s: float
    samples: list[tuple[float, float]]  # (sent at, round trip s)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            await self.socket.send("ping")
            await self.socket.recv()
            self.samples.append((sent, time.monotonic() - sent))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)

    def worst_s(self, since: float, until: float) -> float:
        """The slowest round trip of a ping sent or answered in [since, until]."""
        hits = [rtt for sent, rtt in self.samples if sent <= until and sent + rtt >= since]
        return max(hits, default=0.0)


@contextlib.asynccontextmanager
async def ping_sockets(ws_url: str, count: int, interval_s: float) -> AsyncIterator[list[Pinger]]:
    """``count`` WebSockets on ``/asgi/ws/echo``, each pinging until the block exits."""
    sockets = [await websockets.connect(f"{ws_url}/asgi/ws/echo") for _ in range(count)]
    pingers = [Pinger(sock, interval_s, []) for sock in sockets]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(pinger.run(stop)) for pinger in pingers]
    try:
        yield pingers
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sock in sockets:
            await sock.close()


@contextlib.asynccontextmanager
async def held_streams(base_url: str, path: str, count: int) -> AsyncIterator[float]:
    """``count`` SSE responses of ``path``, each held open; yields once all sent a first event.

    Yields the monotonic time at which the last one started streaming.
    """
    limits = httpx.Limits(max_connections=count + 1)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as c:
        first_events: list[asyncio.Future[float]] = []
        loop = asyncio.get_running_loop()

        async def hold(ready: asyncio.Future[float]) -> None:
            async with c.stream("GET", path) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:") and not ready.done():
                        ready.set_result(time.monotonic())

        tasks = []
        for _ in range(count):
            ready: asyncio.Future[float] = loop.create_future()
            first_events.append(ready)
            tasks.append(asyncio.create_task(hold(ready)))
        try:
            started = await asyncio.wait_for(asyncio.gather(*first_events), REQUEST_TIMEOUT_S)
            yield max(started)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class SlowSenders:
    """Sockets that send a request's headers a few bytes at a time and never finish them.

    The slowloris pattern, bounded: ``count`` sockets, loopback only, closed on exit.
    """

    def __init__(self, host: str, port: int, count: int, path: str) -> None:
        self.host, self.port, self.count, self.path = host, port, count, path
        self.sockets: list[socket.socket] = []

    def open(self) -> None:
        for _ in range(self.count):
            sock = socket.create_connection((self.host, self.port), timeout=5)
            sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: slow\r\n".encode())
            self.sockets.append(sock)

    def trickle(self) -> int:
        """One more header line on every socket still open; how many still are."""
        for sock in list(self.sockets):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                self.sockets.remove(sock)
                sock.close()
        return len(self.sockets)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()

    def __enter__(self) -> SlowSenders:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
