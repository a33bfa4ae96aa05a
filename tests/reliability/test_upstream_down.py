"""Upstream down: with one service stopped, the other keeps serving; the dead one's routes answer
a prompt JSON 502 (never a hang); when it comes back, nginx serves it again by itself."""

from __future__ import annotations

import time

import httpx
import pytest

from stackctl import processes
from stackctl.native import STOP_GRACE_S
from tests.conftest import StackHandle
from tests.reliability.harness import Load, chaosctl, report, wait_until

pytestmark = pytest.mark.reliability

SERVICES = {"wsgi": "flask", "asgi": "fastapi"}


@pytest.mark.parametrize("dead", SERVICES)
def test_one_service_down_the_other_serves_and_it_recovers(chaos_stack: StackHandle, dead: str):
    stack = chaos_stack
    alive = next(prefix for prefix in SERVICES if prefix != dead)
    component = SERVICES[dead]
    record = processes.read_pid(stack.settings.pids_dir / f"{component}.pid")
    assert record is not None
    paths = [f"/{dead}/hello", f"/{alive}/hello", f"/{alive}/io?ms=20"]
    with Load(stack.public_url, paths, threads=4, max_duration_s=60) as load:
        time.sleep(1.5)
        load.mark("stop")
        processes.stop_group(record, grace_s=STOP_GRACE_S)
        load.mark("stopped")
        body = httpx.get(f"{stack.public_url}/{dead}/hello", timeout=10)
        time.sleep(3)
        load.mark("restart")
        started = chaosctl("up", timeout=120)  # starts only what is not running
        assert started.returncode == 0, started.stdout + started.stderr
        recovered_at = wait_until(
            lambda: (
                httpx.get(f"{stack.public_url}/{dead}/hello", timeout=5).status_code == 200
                and time.monotonic()
            ),
            timeout_s=30,
            what=f"/{dead}/hello answering again",
        )
        load.marks["recovered"] = recovered_at
        time.sleep(1.5)

    down = load.window("stopped", "restart", path=f"/{dead}/")
    other = load.window("stopped", "restart", path=f"/{alive}/")
    after = load.window("recovered", "end", path=f"/{dead}/")
    report(
        f"upstream down ({component} stopped for 3 s under 4 clients on {', '.join(paths)})",
        f"/{dead}/ while down:   {down.describe()}",
        f"/{alive}/ meanwhile:   {other.describe()}",
        f"/{dead}/ after return: {after.describe()}",
        f"recovered {recovered_at - load.marks['restart']:.2f} s after `up` was started "
        "(no nginx reload)",
    )
    assert body.status_code == 502
    assert body.json()["error"]["code"] == "bad_gateway"
    assert body.headers["content-type"] == "application/json"
    assert down.sent > 20 and down.count(502) == down.sent
    assert down.percentile(1.0) < 1.0  # a prompt answer, not a hang
    assert other.sent > 20 and other.count(200) == other.sent
    assert after.sent > 5 and after.count(200) == after.sent
