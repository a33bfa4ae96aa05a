"""A real redis-server (Debian's) for tests, configured from the stack's own template.

It listens on a free loopback port, keeps that port across `stop()`/`start()` (a broker
outage and its return), and is stopped at the end.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from stackctl.render import render_file
from stackctl.settings import HOST, REPO_ROOT

TEMPLATE = REPO_ROOT / "services" / "redis" / "redis.conf.template"
START_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def redis_server_path() -> str:
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        raise RuntimeError("redis-server is not installed: run `make setup` (Debian: redis-server)")
    return found


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, work_dir: Path) -> None:
        self.port = free_port()
        self.work_dir = work_dir
        self.conf = work_dir / "redis.conf"
        self.log = work_dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        render_file(
            TEMPLATE,
            self.conf,
            {
                "REDIS_BIND": HOST,
                "REDIS_PORT": str(self.port),
                "REDIS_PROTECTED_MODE": "yes",
                "REDIS_DIR": str(work_dir),
            },
        )

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [redis_server_path(), str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers_ping(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


@contextlib.contextmanager
def running_redis(work_dir: Path) -> Iterator[RedisServer]:
    """A redis-server of the caller's own, stopped however the block ends."""
    server = RedisServer(work_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
