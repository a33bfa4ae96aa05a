"""A `make up` that fails leaves nothing behind: no process started, no port of the stack listening.

Each test runs `stackctl up` on a stack of its own: the `test` profile moved 3000 ports further
(clear of the test stack, 18080..., and the chaos one, 28080...), with its state in tmp_path.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackctl import processes
from stackctl.settings import HOST, REPO_ROOT, Settings, load_settings

pytestmark = pytest.mark.integration

#: Ports further than the test profile's, for a stack started only to fail.
EXTRA_OFFSET = 3000
UP_TIMEOUT_S = 180


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    offset = int(os.environ.get("STACK_PORT_OFFSET") or 0) + EXTRA_OFFSET
    environ = {**os.environ, "STACK_PORT_OFFSET": str(offset), "STATE_DIR": str(tmp_path)}
    settings = load_settings("test", environ)
    yield settings, environ
    # Whatever the test saw, leave nothing running.
    stackctl(environ, "down")


def stackctl(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stackctl", "--stack", "native", "--profile", "test", *args],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=UP_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def listening(settings: Settings, *, besides: str = "") -> list[str]:
    return [
        f"{name} ({port})"
        for name, port in settings.ports.items()
        if name != besides and processes.port_in_use(HOST, port)
    ]


def live_pid_files(settings: Settings) -> list[str]:
    return [
        path.stem
        for path in settings.pids_dir.glob("*.pid")
        if processes.is_alive(processes.read_pid(path))
    ]


def test_a_taken_port_stops_up_before_anything_starts(scratch):
    settings, environ = scratch
    assert listening(settings) == [], "the scratch ports must be free to begin with"
    port = settings.ports["prometheus"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind((HOST, port))
        squatter.listen()
        result = stackctl(environ, "up")
        assert result.returncode != 0
        message = result.stderr
        # It names the port, what needs it, and who holds it (this test process).
        assert f"port {port} (prometheus, needed by prometheus)" in message, message
        assert f"(pid {os.getpid()})" in message, message
        assert "nothing was started" in message
        assert "started (pid" not in result.stdout, result.stdout
        assert listening(settings, besides="prometheus") == []
        assert live_pid_files(settings) == []


def test_a_start_that_fails_half_way_stops_what_it_started(scratch):
    settings, environ = scratch
    assert listening(settings) == [], "the scratch ports must be free to begin with"
    # A real failure after the port check: Uvicorn refuses a worker count of 0 and exits, once
    # Redis (started first), Gunicorn, nginx, the exporters and Prometheus have been started.
    result = stackctl({**environ, "ASGI_WORKERS": "0"}, "up")
    assert result.returncode != 0
    assert "fastapi exited during start-up" in result.stderr, result.stderr
    assert "ASGI_WORKERS" in result.stderr
    out = result.stdout
    for name in ("redis", "redis-exporter", "flask", "prometheus"):
        assert re.search(rf"^\s+{re.escape(name)}\s+started", out, re.MULTILINE), out
    assert "stopping what was started" in out
    assert listening(settings) == []
    assert live_pid_files(settings) == []
