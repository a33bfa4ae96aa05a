"""Chat broker outage: with Redis stopped, chat sockets are closed and new chat handshakes refused
with 1013 "try again later" (never a hang), every HTTP route and /ws/echo keep working, and chat
recovers by itself once Redis is back: same uvicorn workers, no restart."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from stackctl import native, processes
from stackctl.native import STOP_GRACE_S
from tests.conftest import StackHandle
from tests.reliability.harness import Load, chaosctl, metric_sum, report, scrape, wait_until

pytestmark = pytest.mark.reliability

MEMBERS = 4  # with 2 workers, sockets land on both
# Bounds that only stop a broken stack from hanging the test; nothing here measures speed.
RECV_TIMEOUT_S = 10.0
RECOVERY_TIMEOUT_S = 60.0
TRY_AGAIN_LATER = 1013
REASON = "chat broker unavailable"


def _chat_url(stack: StackHandle, room: str) -> str:
    return f"{stack.ws_url}/asgi/ws/chat?room={room}"


async def _join(stack: StackHandle, room: str) -> websockets.ClientConnection:
    socket = await websockets.connect(_chat_url(stack, room))
    joined = json.loads(await asyncio.wait_for(socket.recv(), RECV_TIMEOUT_S))
    assert joined["type"] == "joined"
    return socket


async def _broadcast_reaches_all(stack: StackHandle, room: str) -> bool:
    sockets = [await _join(stack, room) for _ in range(MEMBERS)]
    try:
        await sockets[0].send("anyone?")
        for socket in sockets:
            message = json.loads(await asyncio.wait_for(socket.recv(), RECV_TIMEOUT_S))
            assert message["text"] == "anyone?"
        return True
    finally:
        for socket in sockets:
            await socket.close()


async def _closed_by_server(socket: websockets.ClientConnection) -> tuple[int, str, float]:
    """Wait for the server's close frame; returns its code, reason and arrival time."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(socket.recv(), RECV_TIMEOUT_S)
    arrived = time.monotonic()
    assert socket.close_code is not None
    return socket.close_code, socket.close_reason or "", arrived


async def _handshake_while_down(stack: StackHandle, room: str) -> tuple[int, str]:
    """A new chat handshake during the outage: accepted (101), then closed at once."""
    socket = await websockets.connect(_chat_url(stack, room))
    code, reason, _ = await _closed_by_server(socket)
    return code, reason


async def _echo(stack: StackHandle) -> str:
    async with websockets.connect(f"{stack.ws_url}/asgi/ws/echo") as socket:
        await socket.send("echo during outage")
        return await asyncio.wait_for(socket.recv(), RECV_TIMEOUT_S)


def _polls(stack: StackHandle, room: str) -> dict[str, tuple[int, str | None, str | None]]:
    """`GET` and `POST /poll` on both services through nginx: status, error code, Retry-After."""
    answers = {}
    for prefix in ("asgi", "wsgi"):
        url = f"{stack.public_url}/{prefix}/poll"
        for method, response in (
            ("GET", httpx.get(url, params={"room": room, "timeout_ms": 0}, timeout=10)),
            ("POST", httpx.post(url, params={"room": room}, json={"text": "x"}, timeout=10)),
        ):
            code = response.json()["error"]["code"] if response.status_code >= 400 else None
            answers[f"{method} /{prefix}"] = (
                response.status_code,
                code,
                response.headers.get("Retry-After"),
            )
    return answers


def _polls_answer(stack: StackHandle, room: str) -> dict[str, tuple[int, str | None, str | None]]:
    """`_polls` once every one of them is answered (202 or 204), else an empty dict."""
    polls = _polls(stack, room)
    return polls if all(status in (202, 204) for status, _, _ in polls.values()) else {}


def _chat_works(stack: StackHandle, room: str) -> bool:
    try:
        return asyncio.run(_broadcast_reaches_all(stack, room))
    except (OSError, websockets.WebSocketException, TimeoutError, AssertionError):
        return False


def test_redis_outage_closes_chat_with_1013_and_chat_recovers_by_itself(chaos_stack: StackHandle):
    stack = chaos_stack
    room = f"outage{time.time_ns() % 10**8}"
    redis = processes.read_pid(stack.settings.pids_dir / "redis.pid")
    fastapi = processes.read_pid(stack.settings.pids_dir / "fastapi.pid")
    assert redis is not None and fastapi is not None
    workers_before = native.workers(fastapi.pid)
    assert _chat_works(stack, room), "chat does not work before the outage"

    async def outage() -> tuple[list[tuple[int, str, float]], float, float, tuple[int, str], str]:
        members = [await _join(stack, room) for _ in range(MEMBERS)]
        # Watched from before the stop, so each close is timed when it arrives.
        watching = asyncio.gather(*(_closed_by_server(socket) for socket in members))
        stopping = time.monotonic()
        await asyncio.to_thread(processes.stop_group, redis, grace_s=STOP_GRACE_S)
        stopped = time.monotonic()
        closes = await watching
        refused = await _handshake_while_down(stack, room)
        echoed = await _echo(stack)
        return list(closes), stopping, stopped, refused, echoed

    paths = ["/asgi/hello", "/wsgi/hello", "/asgi/healthz", "/wsgi/healthz"]
    with Load(stack.public_url, paths, threads=4, max_duration_s=120) as load:
        time.sleep(1)
        load.mark("stop")
        closes, stopping, stopped, refused, echoed = asyncio.run(outage())
        broker_gauge = metric_sum(scrape(stack.asgi_metrics_url), "chat_broker_up")
        health = {
            prefix: httpx.get(f"{stack.public_url}/{prefix}/healthz", timeout=10).status_code
            for prefix in ("asgi", "wsgi")
        }
        polls_down = _polls(stack, room)
        time.sleep(1)
        load.mark("restart")
        started = chaosctl("up", timeout=120)  # starts only what is not running: Redis
        assert started.returncode == 0, started.stdout + started.stderr
        restarted = time.monotonic()
        recovered_at = wait_until(
            lambda: _chat_works(stack, room) and time.monotonic(),
            timeout_s=RECOVERY_TIMEOUT_S,
            interval_s=0.2,
            what="chat broadcast working again",
        )
        load.marks["recovered"] = recovered_at
        # Each uvicorn worker reconnects on its own backoff: wait until every poll answers.
        polls_back = wait_until(
            lambda: _polls_answer(stack, room),
            timeout_s=RECOVERY_TIMEOUT_S,
            what="/poll answering on both services",
        )
        time.sleep(1)

    during = load.window("stop", "restart")
    after = load.window("recovered", "end")
    close_after = sorted(arrived - stopping for _, _, arrived in closes)
    report(
        f"chat broker outage (Redis stopped with {MEMBERS} chat sockets open, 4 HTTP clients)",
        f"open chat sockets: {[(code, reason) for code, reason, _ in closes]}",
        f"  closed {close_after[0]:.2f}-{close_after[-1]:.2f} s after SIGTERM to Redis "
        f"(the process was gone after {stopped - stopping:.2f} s)",
        f"new chat handshake while down: close {refused}",
        f"/ws/echo while down: {echoed!r}; healthz {health}; chat_broker_up {broker_gauge:g}",
        f"/poll while down (status, code, Retry-After): {polls_down}",
        f"/poll after return: {polls_back}",
        f"HTTP while down:  {during.describe()}",
        f"HTTP after return: {after.describe()}",
        f"chat broadcast worked again {recovered_at - restarted:.2f} s after Redis was started "
        "(same uvicorn workers)",
    )
    assert all((code, reason) == (TRY_AGAIN_LATER, REASON) for code, reason, _ in closes)
    assert refused == (TRY_AGAIN_LATER, REASON)
    assert echoed == "echo during outage"
    assert health == {"asgi": 200, "wsgi": 200}
    assert set(polls_down.values()) == {(503, "chat_broker_unavailable", "2")}, polls_down
    assert {status for status, _, _ in polls_back.values()} == {202, 204}, polls_back
    assert broker_gauge == 0
    assert during.sent > 20 and during.count(200) == during.sent
    assert after.sent > 5 and after.count(200) == after.sent
    assert native.workers(fastapi.pid) == workers_before, "uvicorn workers were replaced"
    wait_until(
        lambda: metric_sum(scrape(stack.asgi_metrics_url), "chat_broker_up") == 1,
        timeout_s=RECOVERY_TIMEOUT_S,
        what="chat_broker_up back to 1",
    )
