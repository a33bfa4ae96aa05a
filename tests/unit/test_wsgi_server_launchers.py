"""The uWSGI and Granian launchers, really started on loopback (no stack, no nginx).

What only these servers' launchers do is checked here: the identity they report, metrics
aggregated over their workers (a SIGKILLed one included), the graceful stop, and what they answer
to HTTP that nginx would never forward. The HTTP contract itself is the integration suite's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_common import variants
from gateway_common.limits import GRACEFUL_SHUTDOWN_S
from gateway_common.variants import Variant
from stackctl import processes
from stackctl.settings import HOST, REPO_ROOT
from tests.redis_server import free_port

START_TIMEOUT_S = 60.0
NGINX_TEMPLATE = REPO_ROOT / "nginx" / "templates" / "nginx.conf.template"
SERVERS = [variants.get("flask-uwsgi"), variants.get("flask-granian")]


@dataclass
class Launched:
    """One launcher process and what the test sent it (every request that got an answer)."""

    variant: Variant
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    multiproc_dir: Path
    log: Path
    answered: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        url = f"http://{HOST}:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        with self._lock:
            self.answered += 1
        return status, body

    def answers(self) -> bool:
        """/healthz answered; False if no worker took the connection (not counted then)."""
        try:
            return self.get("/healthz")[0] == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def health(self) -> dict[str, object]:
        status, body = self.get("/healthz")
        assert status == 200
        return json.loads(body)

    def metrics(self) -> dict[str, float]:
        """Each sample summed over its label sets, keyed `name` or `name{route}`."""
        url = f"http://{HOST}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                for key in (sample.name, f"{sample.name}{{{sample.labels.get('route', '')}}}"):
                    totals[key] = totals.get(key, 0.0) + sample.value
        return totals

    def counted(self) -> float:
        return self.metrics().get("http_requests_total", 0.0)

    def tree(self) -> set[int]:
        """The launcher and every process below it."""
        found = {self.process.pid}
        frontier = [self.process.pid]
        while frontier:
            children = processes.children(frontier.pop())
            found |= children
            frontier.extend(children)
        return found


def _answers(port: int) -> bool:
    # Refused at once while nothing listens; once connected, it waits to be served (a probe
    # given up on would still be served, and counted, later).
    try:
        url = f"http://{HOST}:{port}/healthz"
        with urllib.request.urlopen(url, timeout=START_TIMEOUT_S) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def launched(
    variant: Variant, tmp_path: Path, redis_url: str, wait: bool = True
) -> Iterator[Launched]:
    """The variant's registry command, run from the repository root as the stack runs it.

    With `wait`, returns once it answers /healthz (one worker is up, maybe not all).
    """
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        **variant.server_env(f"{HOST}:{port}", f"{HOST}:{metrics_port}"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc"),
        "REDIS_URL": redis_url,  # /poll's broker (a real one; the other routes never use it)
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "info",
    }
    log = tmp_path / f"{variant.name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *variant.command],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as stackctl starts it: its own process group
        )
    server = Launched(variant, process, port, metrics_port, tmp_path / "multiproc", log)
    try:
        if wait:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(port):
                assert process.poll() is None, f"{variant.name} exited:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{variant.name} not up:\n{log.read_text()}"
                time.sleep(0.1)
            server.answered = 1  # the probe that found it up
        yield server
    finally:
        tree = server.tree()
        # Stopped as the stack stops it (the launcher then removes its runtime files), and
        # killed if that fails.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=GRACEFUL_SHUTDOWN_S + 10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    """Exists and is no zombie (an exited process its parent has not collected yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _counter_pids(multiproc_dir: Path) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in multiproc_dir.glob("counter_*.db")}


@pytest.mark.parametrize("variant", SERVERS, ids=lambda v: v.name)
def test_identity_and_metrics_summed_over_workers_a_killed_one_included(
    variant: Variant, tmp_path: Path, redis_url: str
) -> None:
    with launched(variant, tmp_path, redis_url) as server:
        health = server.health()
        assert health["service"] == variant.name
        assert (health["server"], health["interface"]) == (variant.server, variant.interface)
        assert (health["workers"], health["threads"]) == (variant.workers, variant.threads)
        assert health["worker_class"] == variant.worker_class
        assert health["pid"] in server.tree() and health["pid"] != server.process.pid

        for _ in range(5):
            assert server.get("/hello")[0] == 200
        victim = int(server.health()["pid"])
        # A request is counted after its response is sent (when the server closes it).
        _wait_for(lambda: server.counted() == server.answered, "the requests to be counted")
        os.kill(victim, signal.SIGKILL)
        _wait_for(
            lambda: (
                len(server.tree() - {server.process.pid}) >= variant.workers
                and victim not in server.tree()
            ),
            "the killed worker to be replaced",
        )
        # uWSGI's master holds the one listening socket. Each Granian worker listens on a socket
        # of its own (SO_REUSEPORT) once it has imported the app: if the victim was the only one
        # listening yet, connections are refused until another one is.
        _wait_for(server.answers, "a worker to listen")
        for _ in range(7):
            assert server.get("/hello")[0] == 200

        # Every answered request, the dead worker's among them.
        _wait_for(lambda: server.counted() == server.answered, "the requests to be counted")
        totals = server.metrics()
        assert totals["http_requests_total{/hello}"] == 12
        assert victim in _counter_pids(server.multiproc_dir)
        assert len(_counter_pids(server.multiproc_dir)) >= 2
        assert totals["server_workers"] == variant.workers
        assert totals["server_worker_capacity"] == variant.capacity
        assert totals["http_requests_in_progress"] == 0  # the dead worker's gauge is swept


STOPS = [
    # stackctl stops a component by signalling its process group.
    pytest.param(variants.get("flask-uwsgi"), "group", id="flask-uwsgi-group"),
    pytest.param(variants.get("flask-granian"), "group", id="flask-granian-group"),
    # Docker signals the container's first process only.
    pytest.param(variants.get("flask-uwsgi"), "main", id="flask-uwsgi-main"),
    pytest.param(variants.get("flask-granian"), "main", id="flask-granian-main"),
]


@pytest.mark.parametrize(("variant", "target"), STOPS)
def test_sigterm_lets_the_requests_in_flight_finish(
    variant: Variant, target: str, tmp_path: Path, redis_url: str
) -> None:
    with launched(variant, tmp_path, redis_url) as server:
        in_flight = 3
        results: list[tuple[int, bytes]] = []

        def call() -> None:
            results.append(server.get("/io?ms=1500", timeout=30))

        callers = [threading.Thread(target=call) for _ in range(in_flight)]
        for caller in callers:
            caller.start()
        _wait_for(
            lambda: server.metrics().get("http_requests_in_progress") == in_flight,
            "the requests to be in flight",
        )
        tree = server.tree()
        if target == "group":
            os.killpg(server.process.pid, signal.SIGTERM)
        else:
            os.kill(server.process.pid, signal.SIGTERM)
        for caller in callers:
            caller.join(timeout=30)

        assert [status for status, _ in results] == [200] * in_flight
        assert all(json.loads(body)["requested_ms"] == 1500 for _, body in results)
        assert server.process.wait(timeout=GRACEFUL_SHUTDOWN_S + 10) == 0
        _wait_for(lambda: not any(map(_running, tree)), "no leftovers")
        assert processes.port_free(HOST, server.port)
        assert processes.port_free(HOST, server.metrics_port)


def _nginx_malformed_answer() -> bytes:
    """nginx's body for malformed HTTP, as its template writes it."""
    text = NGINX_TEMPLATE.read_text()
    match = re.search(r"return 400 '(\{[^']*\"bad_request\"[^']*)';", text)
    assert match, "nginx.conf.template has no bad_request answer"
    return match.group(1).replace("\\n", "\n").encode()


def _raw(port: int, data: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("variant", SERVERS, ids=lambda v: v.name)
def test_malformed_http_gets_a_400(variant: Variant, tmp_path: Path, redis_url: str) -> None:
    with launched(variant, tmp_path, redis_url) as server:
        answer = _raw(server.port, b"GARBAGE\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 400 ", answer)
        head, _, body = answer.partition(b"\r\n\r\n")
        if variant.server == "uwsgi":
            # uWSGI hands it to the app; the app answers as nginx would.
            assert body == _nginx_malformed_answer()
            assert b"\r\nX-Request-ID: " in head
        else:
            # Granian's HTTP layer (hyper) answers before the app: a bare 400.
            assert body == b""
        assert server.health()["status"] == "ok"  # and the server keeps serving


@pytest.mark.parametrize("variant", SERVERS, ids=lambda v: v.name)
def test_a_stop_while_the_workers_import_the_app_is_graceful(
    variant: Variant, tmp_path: Path, redis_url: str
) -> None:
    """Workers import the app after the fork; one told to stop then must not ignore it."""
    with launched(variant, tmp_path, redis_url, wait=False) as server:
        # Launcher, (uWSGI's master,) then the workers: stop as soon as they exist.
        processes_when_forked = 1 + (variant.server == "uwsgi") + variant.workers
        _wait_for(lambda: len(server.tree()) >= processes_when_forked, "the workers to fork")
        tree = server.tree()
        os.killpg(server.process.pid, signal.SIGTERM)

        assert server.process.wait(timeout=GRACEFUL_SHUTDOWN_S + 10) == 0
        log = server.log.read_text()
        assert "refused to gracefully stop" not in log  # Granian killed a worker
        assert "killing it" not in log  # the uWSGI launcher killed uWSGI
        _wait_for(lambda: not any(map(_running, tree)), "no leftovers")
        assert processes.port_free(HOST, server.port)
