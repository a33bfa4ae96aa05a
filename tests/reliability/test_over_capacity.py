"""Past the edge's connection cap, a new WebSocket is refused cleanly: 503 JSON with Retry-After
from nginx, while the sockets it holds keep echoing and plain HTTP is still served.

The cap is lowered for this test only (EDGE_MAX_CONNECTIONS, applied with a reload), so the
refusal is proven with a few dozen sockets rather than the 10,000 the default stack admits
(`make bench-capacity` measures those).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import StackHandle
from tests.reliability.harness import chaosctl, report

pytestmark = pytest.mark.reliability

SMALL_CAP = 24
ATTEMPTS = SMALL_CAP + 16


def _reload(env: dict[str, str] | None = None) -> None:
    reloaded = chaosctl("reload", env=env)
    assert reloaded.returncode == 0, f"reload failed:\n{reloaded.stdout}\n{reloaded.stderr}"


async def _open_until_refused(ws_url: str) -> tuple[list, list[InvalidStatus], list[str]]:
    held, refused, broken = [], [], []
    for _ in range(ATTEMPTS):
        try:
            held.append(await connect(f"{ws_url}/asgi/ws/echo", open_timeout=10))
        except InvalidStatus as exc:
            refused.append(exc)
        except Exception as exc:  # a broken handshake: what must not happen
            broken.append(repr(exc))
    return held, refused, broken


async def _echo_all(held: list) -> int:
    async def one(index: int, ws) -> bool:
        await ws.send(f"held-{index}")
        return await asyncio.wait_for(ws.recv(), 10) == f"held-{index}"

    return sum(await asyncio.gather(*(one(i, ws) for i, ws in enumerate(held))))


def test_websockets_past_the_cap_get_a_json_503_not_a_broken_handshake(
    chaos_stack: StackHandle,
) -> None:
    error_log = chaos_stack.logs_dir / "nginx-error.log"
    log_start = error_log.stat().st_size if error_log.exists() else 0
    _reload({"EDGE_MAX_CONNECTIONS": str(SMALL_CAP)})
    try:

        async def scenario():
            held, refused, broken = await _open_until_refused(chaos_stack.ws_url)
            try:
                echoed = await _echo_all(held)
                async with httpx.AsyncClient(timeout=10) as client:
                    plain = await client.get(f"{chaos_stack.public_url}/asgi/hello")
            finally:
                await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
            # Once they are closed, a new WebSocket is admitted again.
            async with connect(f"{chaos_stack.ws_url}/asgi/ws/echo", open_timeout=10) as ws:
                await ws.send("after")
                after = await asyncio.wait_for(ws.recv(), 10)
            return held, refused, broken, echoed, plain, after

        held, refused, broken, echoed, plain, after = asyncio.run(scenario())
    finally:
        _reload()

    assert broken == [], f"handshakes that ended without an HTTP answer: {broken[:3]}"
    # Every connection nginx holds counts, so a few slots may be taken by others (the exporter).
    assert SMALL_CAP - 4 <= len(held) <= SMALL_CAP
    assert len(refused) == ATTEMPTS - len(held)
    for exc in refused:
        assert exc.response.status_code == 503
        assert exc.response.headers["Retry-After"] == "5"
        assert exc.response.headers["Content-Type"] == "application/json"
        assert json.loads(exc.response.body)["error"]["code"] == "over_capacity"
    assert echoed == len(held), "a held socket stopped echoing once the cap was reached"
    assert plain.status_code == 200, "plain HTTP is still served at the cap"
    assert after == "after"
    new_log = error_log.read_text(errors="replace")[log_start:]
    assert "worker_connections are not enough" not in new_log
    report(
        f"edge capacity: WebSockets past a cap of {SMALL_CAP} client connections",
        f"held {len(held)}, refused {len(refused)} with 503 over_capacity, broken {len(broken)}",
        f"held sockets echoing at the cap: {echoed} of {len(held)}",
    )
