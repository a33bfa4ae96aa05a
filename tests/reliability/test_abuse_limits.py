"""Abuse limits on the public port: per-client request rate and connections, answered 429.

The limits apply per client address. 127.0.0.1 (where the suite and `make bench` run from) is
exempt by configuration (RATE_LIMIT_EXEMPT); these tests bind other loopback source addresses,
which nginx treats like any remote client.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import StackHandle
from tests.reliability.harness import report

pytestmark = pytest.mark.reliability

RATE_PER_S, BURST, CONNECTIONS = 20, 40, 32


def _sequential(base_url: str, source: str | None, count: int) -> list[httpx.Response]:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=base_url, transport=transport, timeout=10) as client:
        return [client.get("/asgi/hello") for _ in range(count)]


def test_request_rate_over_the_limit_is_a_json_429_with_retry_after(chaos_stack: StackHandle):
    started = time.monotonic()
    responses = _sequential(chaos_stack.public_url, "127.0.0.2", 150)
    elapsed = time.monotonic() - started
    allowed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    exempt = _sequential(chaos_stack.public_url, "127.0.0.1", 150)
    time.sleep(1.5)  # the bucket refills at 20/s
    again = _sequential(chaos_stack.public_url, "127.0.0.2", 5)
    report(
        f"rate limit ({RATE_PER_S} r/s per client, burst {BURST})",
        f"150 requests from 127.0.0.2 in {elapsed:.2f} s: {len(allowed)} x 200, "
        f"{len(refused)} x 429",
        f"150 requests from 127.0.0.1 (exempt): {sum(r.status_code == 200 for r in exempt)} x 200",
        f"after 1.5 s of quiet, 127.0.0.2 again: {[r.status_code for r in again]}",
    )
    assert len(allowed) + len(refused) == len(responses)
    assert BURST <= len(allowed) <= BURST + 1 + int(elapsed * RATE_PER_S) + 2
    assert refused
    sample = refused[0]
    assert sample.headers["retry-after"] == "1"
    assert sample.headers["content-type"] == "application/json"
    assert sample.headers["x-request-id"]
    assert sample.json()["error"] == {
        "status": 429,
        "code": "too_many_requests",
        "message": sample.json()["error"]["message"],
    }
    assert all(r.status_code == 200 for r in exempt)
    assert all(r.status_code == 200 for r in again)


def test_connections_over_the_limit_are_a_json_429(chaos_stack: StackHandle):
    source, wanted = "127.0.0.4", 38  # under the burst (40), over the connection limit (32)

    async def run() -> list[int]:
        transport = httpx.AsyncHTTPTransport(
            local_address=source, limits=httpx.Limits(max_connections=wanted)
        )
        async with httpx.AsyncClient(
            base_url=chaos_stack.public_url, transport=transport, timeout=15
        ) as client:
            responses = await asyncio.gather(
                *(client.get("/asgi/io", params={"ms": 1500}) for _ in range(wanted))
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(run())
    log = (chaos_stack.logs_dir / "nginx-error.log").read_text()
    report(
        f"connection limit ({CONNECTIONS} connections with a request in progress per client)",
        f"{wanted} concurrent /asgi/io?ms=1500 from {source}: {statuses.count(200)} x 200, "
        f"{statuses.count(429)} x 429",
    )
    assert statuses.count(200) == CONNECTIONS
    assert statuses.count(429) == wanted - CONNECTIONS
    assert f'limiting connections by zone "per_client_conn", client: {source}' in log
