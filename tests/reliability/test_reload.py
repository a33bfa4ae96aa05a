"""Graceful reload under load: `make reload` while traffic flows drops no idempotent request.

`make reload` re-renders the configs and SIGHUPs nginx, Gunicorn, Uvicorn and Prometheus. Open
WebSockets are told to reconnect with close code 1012 ("service restart") by the Uvicorn worker
that is being replaced; they are never cut mid-frame.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
import websockets

from tests.conftest import StackHandle
from tests.reliability.harness import Load, chaosctl, report

pytestmark = pytest.mark.reliability

PATHS = ["/wsgi/hello", "/asgi/hello", "/wsgi/io?ms=50", "/asgi/io?ms=50", "/"]
WEBSOCKETS = 6
SERVICE_RESTART = 1012


class WebSocketWatchers:
    """Open sockets that echo a message every 100 ms and record how each one ended."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.closes: list[tuple[int | None, str]] = []
        self.echoed = 0
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _one(self, ready: list[int]) -> None:
        async with websockets.connect(self.url, open_timeout=10) as ws:
            ready.append(1)
            if len(ready) == self.count:
                self.opened.set()
            try:
                while not self._stop.is_set():
                    await ws.send("ping")
                    assert await asyncio.wait_for(ws.recv(), 10) == "ping"
                    self.echoed += 1
                    await asyncio.sleep(0.1)
            except websockets.ConnectionClosed as closed:
                rcvd = closed.rcvd
                self.closes.append((rcvd.code if rcvd else None, rcvd.reason if rcvd else ""))
                return
            self.closes.append((1000, "client done"))

    async def _main(self) -> None:
        ready: list[int] = []
        await asyncio.gather(*(self._one(ready) for _ in range(self.count)), return_exceptions=True)

    def __enter__(self) -> WebSocketWatchers:
        self._thread.start()
        assert self.opened.wait(15), "WebSockets did not open"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=20)


def test_reload_under_load_drops_no_request_and_applies_the_new_config(chaos_stack: StackHandle):
    stack = chaos_stack
    with (
        WebSocketWatchers(f"{stack.ws_url}/asgi/ws/echo", WEBSOCKETS) as sockets,
        Load(stack.public_url, PATHS, threads=6, max_duration_s=60) as load,
    ):
        time.sleep(3)
        load.mark("reload1")
        # A config change that only takes effect if the reload re-renders the templates:
        # 127.0.0.0/30 exempts 127.0.0.3 from the per-client rate limit (and keeps 127.0.0.1,
        # where this load comes from, exempt).
        first = chaosctl("reload", env={"RATE_LIMIT_EXEMPT": "127.0.0.0/30"}, timeout=120)
        load.mark("reloaded1")
        assert first.returncode == 0, first.stdout + first.stderr
        burst = _burst_from("127.0.0.3", stack.public_url, 80)
        time.sleep(2)
        load.mark("reload2")
        second = chaosctl("reload", timeout=120)  # back to the default (127.0.0.1 exempt)
        load.mark("reloaded2")
        assert second.returncode == 0, second.stdout + second.stderr
        time.sleep(3)
        load.mark("after")
    limited_again = _burst_from("127.0.0.3", stack.public_url, 80)

    before = load.window("start", "reload1")
    during = load.window("reload1", "reloaded1")
    during2 = load.window("reload2", "reloaded2")
    whole = load.all()
    report(
        "graceful reload under load (make reload, twice; 6 closed-loop clients on "
        f"{', '.join(PATHS)})",
        f"before reload:     {before.describe()}",
        f"during reload 1:   {during.describe()} "
        f"({load.marks['reloaded1'] - load.marks['reload1']:.1f} s)",
        f"during reload 2:   {during2.describe()} "
        f"({load.marks['reloaded2'] - load.marks['reload2']:.1f} s)",
        f"whole run:         {whole.describe()}",
        f"config change applied: 80 rapid requests from 127.0.0.3 -> {burst} "
        f"(exempt after reload 1), {limited_again} (limited again after reload 2)",
        f"WebSockets: {WEBSOCKETS} open, {sockets.echoed} echoes, closes seen: {sockets.closes}",
    )
    assert whole.sent > 200
    assert not whole.failed, [s for s in whole.failed][:5]
    assert whole.count(200) == whole.sent
    assert burst == {200: 80}
    assert limited_again.get(429, 0) > 0
    # Each socket was on a Uvicorn worker that the reload replaced: told to reconnect, not cut.
    assert len(sockets.closes) == WEBSOCKETS
    assert all(code == SERVICE_RESTART for code, _ in sockets.closes), sockets.closes
    # ... and a reconnect works at once.
    asyncio.run(_echo_once(f"{stack.ws_url}/asgi/ws/echo"))


def _burst_from(source: str, base_url: str, count: int) -> dict[int, int]:
    transport = httpx.HTTPTransport(local_address=source)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=base_url, transport=transport, timeout=10) as client:
        for _ in range(count):
            status = client.get("/asgi/hello").status_code
            statuses[status] = statuses.get(status, 0) + 1
    return statuses


async def _echo_once(url: str) -> None:
    async with websockets.connect(url, open_timeout=10) as ws:
        await ws.send("again")
        assert await asyncio.wait_for(ws.recv(), 10) == "again"
