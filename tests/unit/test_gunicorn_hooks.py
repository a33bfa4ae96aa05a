"""The Gunicorn hooks every Gunicorn config shares (gateway_common.gunicorn_hooks), in a real
Gunicorn: the master serves the workers' summed metrics and drops a killed worker's live gauges."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from gateway_common import metrics, variants
from stackctl import processes
from tests.server_process import running_server

WAIT_S = 30.0  # bound for the arbiter to notice the dead worker and start another


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_master_sums_workers_and_forgets_a_killed_one(tmp_path: Path) -> None:
    variant = variants.get("flask")
    name = variant.name
    # The Flask service needs no broker: REDIS_URL is never contacted.
    with running_server(variant, tmp_path, "redis://127.0.0.1:1/0") as server:
        requests = 20
        before = _sample(server.metrics_text(), "http_requests_total", service=name)
        pids = {server.get_json("/healthz")["pid"] for _ in range(requests)}
        text = server.metrics_text()
        assert _sample(text, "server_workers", service=name) == variant.workers
        # Every request counted once, whichever worker answered it (one of them, or both). A
        # WSGI request is counted when the server closes its response, which may come just
        # after the client has read it: wait for the last count, never for more.
        deadline = time.monotonic() + WAIT_S
        answered = _sample(text, "http_requests_total", service=name) - before
        while answered < requests and time.monotonic() < deadline:
            time.sleep(0.05)
            answered = _sample(server.metrics_text(), "http_requests_total", service=name) - before
        assert answered == requests, (answered, pids)

        victim = min(pids)
        live = metrics.pids_with_live_gauges(server.multiproc_dir)
        assert victim in live
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            workers = processes.children(server.pid)
            if len(workers) == variant.workers and victim not in workers:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no worker replaced {victim}: {processes.children(server.pid)}")
        # child_exit dropped the dead worker's live gauge files (no scrape, no sweep, ran).
        deadline = time.monotonic() + WAIT_S
        while victim in metrics.pids_with_live_gauges(server.multiproc_dir):
            assert time.monotonic() < deadline, "the killed worker's live gauges stayed"
            time.sleep(0.1)
        # Its counts stay: the requests it answered happened.
        after = _sample(server.metrics_text(), "http_requests_total", service=name)
        assert after >= requests
