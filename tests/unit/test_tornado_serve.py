"""`python -m tornado_app.serve`: the launcher and its worker processes, really started.

Each test starts the launcher on free loopback ports with a metrics directory of its own, the
session's redis-server as chat broker, and stops it (or checks that it stopped) at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway_common.settings import Bind, parse_bind
from stackctl.processes import children
from stackctl.settings import REPO_ROOT
from tests.redis_server import free_port
from tornado_app.lifecycle import GRACEFUL_SHUTDOWN_S

START_TIMEOUT_S = 30.0  # bounds against hanging, not speed requirements
WAIT_S = 10.0
STOP_TIMEOUT_S = GRACEFUL_SHUTDOWN_S + 10


@dataclass
class Launched:
    process: subprocess.Popen[bytes]
    bind: Bind
    metrics_bind: Bind
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.bind}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_bind}/metrics"

    def workers(self) -> set[int]:
        return children(self.process.pid)

    def metric(self, line_start: str) -> float | None:
        for line in httpx.get(self.metrics_url, timeout=WAIT_S).text.splitlines():
            if line.startswith(line_start + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


def eventually(check: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def launcher_env(tmp_path: Path, redis_url: str, **overrides: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "REDIS_URL": redis_url,
        "TORNADO_BIND": f"127.0.0.1:{free_port()}",
        "TORNADO_METRICS_BIND": f"127.0.0.1:{free_port()}",
        "TORNADO_WORKERS": "2",
        "LOG_LEVEL": "info",
        **overrides,
    }


def run_launcher(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tornado_app.serve"],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own group: the teardown can stop every worker too
        )


@pytest.fixture
def launched(tmp_path: Path, redis_url: str) -> Iterator[Launched]:
    env = launcher_env(tmp_path, redis_url)
    log = tmp_path / "serve.log"
    process = run_launcher(env, log)
    started = Launched(
        process,
        parse_bind("TORNADO_BIND", env["TORNADO_BIND"]),
        parse_bind("TORNADO_METRICS_BIND", env["TORNADO_METRICS_BIND"]),
        log,
    )
    try:
        serving = eventually(
            lambda: process.poll() is not None or answers(f"{started.url}/healthz"),
            START_TIMEOUT_S,
        )
        assert serving and process.poll() is None, log.read_text()
        yield started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_two_workers_serve_and_the_launcher_serves_the_metrics(launched: Launched) -> None:
    workers = launched.workers()
    assert len(workers) == 2
    health = httpx.get(f"{launched.url}/healthz").json()
    assert health["pid"] in workers
    assert (health["workers"], health["worker_class"]) == (2, "ioloop")

    for _ in range(5):
        assert httpx.get(f"{launched.url}/hello").status_code == 200
    labels = 'interface="tornado",service="tornado"'
    assert launched.metric(f"server_workers{{{labels}}}") == 2
    assert launched.metric(f"server_worker_capacity{{{labels}}}") == 2
    hello = 'http_requests_total{interface="tornado",method="GET",route="/hello",'
    assert launched.metric(f'{hello}service="tornado",status="200"}}') == 5
    # Metrics are only on their own port.
    assert httpx.get(f"{launched.url}/metrics").status_code == 404


def test_a_worker_that_dies_is_replaced(launched: Launched) -> None:
    first, second = sorted(launched.workers())
    os.kill(first, signal.SIGKILL)
    assert eventually(lambda: len(launched.workers() - {first}) == 2), launched.log.read_text()
    assert second in launched.workers()
    assert all(answers(f"{launched.url}/hello") for _ in range(6))
    assert "worker exited, restarting it" in launched.log.read_text()


def test_sigterm_lets_requests_finish_closes_websockets_with_1012_and_exits(
    launched: Launched,
) -> None:
    url = f"{launched.url}/io?ms=1500"
    answer: list[httpx.Response] = []
    request = threading.Thread(target=lambda: answer.append(httpx.get(url, timeout=WAIT_S)))
    workers = launched.workers()
    with connect(f"ws://{launched.bind}/ws/echo", proxy=None, open_timeout=WAIT_S) as ws:
        ws.send("x")
        assert ws.recv(timeout=WAIT_S) == "x"
        request.start()
        in_progress = (
            'http_requests_in_progress{interface="tornado",method="GET",route="/io",'
            'service="tornado"}'
        )
        assert eventually(lambda: launched.metric(in_progress) == 1)

        launched.process.send_signal(signal.SIGTERM)  # the launcher only: it tells the workers

        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1012, "server shutting down")
    request.join(WAIT_S)
    assert answer[0].status_code == 200
    assert answer[0].json()["requested_ms"] == 1500
    assert launched.process.wait(STOP_TIMEOUT_S) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{launched.url}/hello")
    log = launched.log.read_text()
    assert '"clean": true' in log
    assert "killed after the grace period" not in log


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"REDIS_URL": ""}, "REDIS_URL is required"),
        ({"TORNADO_WORKERS": "0"}, "TORNADO_WORKERS must be an integer between 1 and 64"),
        ({"TORNADO_BIND": "nowhere"}, "TORNADO_BIND must look like HOST:PORT"),
        ({"TORNADO_ROOT_PATH": "tornado/"}, "TORNADO_ROOT_PATH must be empty or look like"),
        ({"PROMETHEUS_MULTIPROC_DIR": ""}, "PROMETHEUS_MULTIPROC_DIR is not set"),
    ],
)
def test_configuration_errors_exit_2_with_the_reason(
    tmp_path: Path, redis_url: str, overrides: dict[str, str], says: str
) -> None:
    env = launcher_env(tmp_path, redis_url, **overrides)
    result = subprocess.run(
        [sys.executable, "-m", "tornado_app.serve"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert result.returncode == 2
    assert says in result.stderr


def test_a_port_in_use_exits_1(tmp_path: Path, redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = launcher_env(tmp_path, redis_url, TORNADO_BIND=f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, "-m", "tornado_app.serve"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_a_worker_started_without_sockets_exits_2(tmp_path: Path, redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tornado_app.worker"],
        cwd=REPO_ROOT,
        env=launcher_env(tmp_path, redis_url),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    assert result.returncode == 2
    assert "no listening socket given" in result.stderr
