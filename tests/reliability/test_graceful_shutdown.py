"""Graceful shutdown: `make down` lets the requests in flight finish, within a bounded grace.

Marked `last` (tests/conftest.py runs it after every other test): it stops the chaos stack,
and starts it again afterwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import httpx
import pytest
import websockets

from stackctl.native import STOP_GRACE_S
from tests.conftest import StackHandle
from tests.reliability.harness import chaosctl, ensure_up, report

pytestmark = [pytest.mark.reliability, pytest.mark.last]

IN_FLIGHT = {
    "/wsgi/io?ms=2000": 2,
    "/asgi/io?ms=2000": 4,
    "/asgi/stream?events=4&interval_ms=500": 2,
}


def test_down_lets_requests_in_flight_finish(chaos_stack: StackHandle):
    stack = chaos_stack

    def fetch(path: str) -> tuple[str, int | str, float, str]:
        started = time.monotonic()
        try:
            response = httpx.get(f"{stack.public_url}{path}", timeout=30)
            outcome: int | str = response.status_code
            text = response.text
        except httpx.HTTPError as exc:
            outcome, text = type(exc).__name__, ""
        return path, outcome, time.monotonic() - started, text

    async def websocket_close_code() -> int | None:
        async with websockets.connect(f"{stack.ws_url}/asgi/ws/echo", open_timeout=10) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 30)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    loop = asyncio.new_event_loop()
    paths = [path for path, count in IN_FLIGHT.items() for _ in range(count)]
    with concurrent.futures.ThreadPoolExecutor(len(paths) + 1) as pool:
        ws_future = pool.submit(loop.run_until_complete, websocket_close_code())
        futures = [pool.submit(fetch, path) for path in paths]
        time.sleep(0.5)  # every request is in a worker (or queued at Gunicorn) now
        started = time.monotonic()
        stopped = chaosctl("down", timeout=120)
        down_s = time.monotonic() - started
        refused_after = _refused(stack.public_url)
        results = [future.result(timeout=60) for future in futures]
        ws_code = ws_future.result(timeout=60)
    loop.close()
    try:
        report(
            f"graceful shutdown (`down` with {len(paths)} requests in flight: "
            + ", ".join(f"{count} x {path}" for path, count in IN_FLIGHT.items())
            + ", and 1 open WebSocket)",
            *(f"{path}: {outcome} after {elapsed:.2f} s" for path, outcome, elapsed, _ in results),
            f"down took {down_s:.2f} s (grace period {STOP_GRACE_S:.0f} s); "
            f"new connections afterwards: {'refused' if refused_after else 'accepted'}",
            f"open WebSocket closed with {ws_code}",
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "killed" not in stopped.stdout
        assert all(outcome == 200 for _, outcome, _, _ in results), results
        streams = [text for path, _, _, text in results if "/stream" in path]
        assert all("event: end" in text for text in streams)
        assert down_s < STOP_GRACE_S
        assert refused_after
        assert ws_code in (1001, 1012)
    finally:
        ensure_up()


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)
    except httpx.ConnectError:
        return True
    return False
