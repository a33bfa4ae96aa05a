"""The chat broker down in Docker mode: `docker compose stop redis` closes chat with 1013, HTTP and
/ws/echo carry on, and chat works again by itself once `docker compose start redis` returns."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.docker.harness import DockerStack, figure
from tests.reliability.harness import Load, wait_until
from tests.reliability.test_broker_outage import (
    MEMBERS,
    REASON,
    RECOVERY_TIMEOUT_S,
    TRY_AGAIN_LATER,
    _chat_works,
    _closed_by_server,
    _echo,
    _handshake_while_down,
    _join,
)

pytestmark = pytest.mark.docker


def test_redis_stopped_closes_chat_with_1013_and_chat_recovers_by_itself(stack: DockerStack):
    room = f"dockeroutage{time.time_ns() % 10**8}"
    assert _chat_works(stack, room), "chat does not work before the outage"

    async def outage():
        members = [await _join(stack, room) for _ in range(MEMBERS)]
        watching = asyncio.gather(*(_closed_by_server(socket) for socket in members))
        stopping = time.monotonic()
        await asyncio.to_thread(stack.compose, "stop", "redis")
        closes = await watching
        return closes, stopping, await _handshake_while_down(stack, room), await _echo(stack)

    paths = ["/asgi/hello", "/wsgi/hello", "/asgi/healthz", "/wsgi/healthz"]
    with Load(stack.public_url, paths, threads=4, max_duration_s=150) as load:
        time.sleep(1)
        load.mark("stop")
        closes, stopping, refused, echoed = asyncio.run(outage())
        health = {
            prefix: httpx.get(f"{stack.public_url}/{prefix}/healthz", timeout=10).status_code
            for prefix in ("asgi", "wsgi")
        }
        load.mark("restart")
        stack.compose("start", "redis")
        restarted = time.monotonic()
        recovered = wait_until(
            lambda: _chat_works(stack, room) and time.monotonic(),
            timeout_s=RECOVERY_TIMEOUT_S,
            interval_s=0.2,
            what="chat broadcast working again",
        )
        load.marks["recovered"] = recovered
        time.sleep(1)

    during = load.window("stop", "restart")
    figure(
        f"Redis stopped: {len(closes)} open chat sockets closed with "
        f"{sorted({(code, reason) for code, reason, _ in closes})} "
        f"{max(arrived for _, _, arrived in closes) - stopping:.2f} s after `compose stop` began; "
        f"a new handshake got {refused}; /ws/echo {echoed!r}; healthz {health}; "
        f"HTTP while down: {during.describe()}; chat worked again "
        f"{recovered - restarted:.2f} s after `compose start redis`"
    )
    assert all((code, reason) == (TRY_AGAIN_LATER, REASON) for code, reason, _ in closes)
    assert refused == (TRY_AGAIN_LATER, REASON)
    assert echoed == "echo during outage"
    assert health == {"asgi": 200, "wsgi": 200}
    assert during.sent > 0 and during.count(200) == during.sent, during.describe()
    after = load.window("recovered", "end")
    assert after.count(200) == after.sent, after.describe()
