"""Lab 6: nginx's buffering absorbs slow clients that would starve Gunicorn directly.

nginx reads a whole request before it passes it on, so sockets that trickle their headers
(slowloris) cost nginx a connection each and the sync workers nothing. Sent straight to
Gunicorn's own port, each such socket holds a sync worker while it reads: ``capacity`` of them
take every worker, and other requests wait. Natively Gunicorn's port is on loopback only; in
Docker mode it is not published, and that half is not measured.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from loadtests.lab import client
from loadtests.lab.model import Check, Knobs, LabResult, Prediction, Verdict
from loadtests.lab.runner import Console
from loadtests.lab.stack import LabStack

HOLD_S = 3.0  # how long the slow sockets trickle before the probes; nginx cuts them at 10 s
PROBES = 3
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class SlowMeasurement:
    slow_sockets: int
    #: Probe outcomes (status or error name) through nginx, and directly (None: not reachable).
    through_nginx: tuple[int | str, ...]
    direct: tuple[int | str, ...] | None
    recovered: tuple[int | str, ...] | None


def judge(got: SlowMeasurement) -> Verdict:
    checks = [
        Check("probes answered through nginx", PROBES, got.through_nginx.count(200), PROBES, PROBES)
    ]
    notes = [f"{got.slow_sockets} slow sockets each time; probe timeout {PROBE_TIMEOUT_S:g} s"]
    if got.direct is None:
        notes.append(
            "Gunicorn's port is not published in Docker mode: the direct half is not measured"
        )
    else:
        starved = sum(1 for outcome in got.direct if outcome != 200)
        checks.append(Check("probes starved directly at Gunicorn", PROBES, starved, PROBES, PROBES))
        if got.recovered is not None:
            checks.append(
                Check(
                    "answered again once the slow sockets close",
                    PROBES,
                    got.recovered.count(200),
                    PROBES,
                    PROBES,
                )
            )
        notes.append(f"direct probes: {list(got.direct)}")
    return Verdict.from_checks("slow-clients", tuple(checks), tuple(notes))


async def _probes(base_url: str, path: str) -> tuple[int | str, ...]:
    return tuple([(await client.get(base_url, path, PROBE_TIMEOUT_S))[0] for _ in range(PROBES)])


async def _attack(
    url: str, path: str, count: int, probe_base: str, probe_path: str, console: Console
) -> tuple[int | str, ...]:
    parts = urlsplit(url)
    with client.SlowSenders(parts.hostname or "127.0.0.1", parts.port or 80, count, path) as slow:
        console.say(f"  {count} slow sockets trickling headers to {url} ...")
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            slow.trickle()
        outcomes = await _probes(probe_base, probe_path)
        console.say(f"  probes GET {probe_base}{probe_path}: {list(outcomes)}")
    return outcomes


def run(stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    wsgi = stack.service("wsgi")
    count = 2 * wsgi.capacity + 2
    prediction = Prediction(
        "through nginx /wsgi/hello keeps answering; straight at Gunicorn it starves",
        (
            f"WSGI capacity = {wsgi.workers} x {wsgi.threads} = {wsgi.capacity} "
            "(from /wsgi/healthz)",
            f"{count} slow sockets (2 x capacity + 2) trickle headers for {HOLD_S:g} s",
            "through nginx: it buffers until a request is complete -> the workers never see them "
            f"-> {PROBES} of {PROBES} probes answer 200",
            f"directly: each slow socket holds one worker -> {wsgi.capacity} suffice -> "
            f"{PROBES} of {PROBES} probes time out ({PROBE_TIMEOUT_S:g} s), and answer again "
            "once the sockets close",
        ),
    )
    console.expect(prediction)

    async def measure() -> SlowMeasurement:
        nginx = await _attack(
            stack.public_url, "/wsgi/hello", count, stack.public_url, "/wsgi/hello", console
        )
        if stack.wsgi_direct_url is None:
            return SlowMeasurement(count, nginx, None, None)
        direct = await _attack(
            stack.wsgi_direct_url, "/hello", count, stack.wsgi_direct_url, "/hello", console
        )
        await asyncio.sleep(0.5)
        recovered = await _probes(stack.wsgi_direct_url, "/hello")
        console.say(f"  after closing them: {list(recovered)}")
        return SlowMeasurement(count, nginx, direct, recovered)

    got = asyncio.run(measure())
    verdict = judge(got)
    console.verdict(verdict)
    return LabResult(prediction, got, verdict)
