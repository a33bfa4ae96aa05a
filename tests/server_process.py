"""A service's server started for real, as stackctl starts it: its own session, from the repo root.

`ServerProcess` runs a variant's registry command with its server environment on free loopback
ports, waits for `/healthz`, and stops the whole process group (SIGTERM, then SIGKILL after a
bound) at the end, as `make down` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway_common.variants import Variant
from stackctl.settings import HOST, REPO_ROOT
from tests.redis_server import free_port

START_TIMEOUT_S = 90.0  # spawned workers import the app afresh; a shared machine is slow
STOP_TIMEOUT_S = 60.0  # past the servers' 30 s grace period


class ServerProcess:
    def __init__(self, variant: Variant, work_dir: Path, redis_url: str) -> None:
        self.variant = variant
        self.port = free_port()
        self.metrics_port = free_port()
        self.multiproc_dir = work_dir / "multiproc"
        self.log_path = work_dir / f"{variant.name}.log"
        self.env = {
            **os.environ,
            **variant.server_env(f"{HOST}:{self.port}", f"{HOST}:{self.metrics_port}"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.multiproc_dir),
            "REDIS_URL": redis_url,
            "FORWARDED_ALLOW_IPS": HOST,
            "PYTHONUNBUFFERED": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.variant.command],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.variant.name} exited at start:\n{self.log()}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                self.get_json("/healthz")
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.variant.name} not healthy in {START_TIMEOUT_S} s:\n{self.log()}")

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            return json.load(response)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return response.read().decode()

    def terminate_group(self) -> None:
        """SIGTERM to every process of the server, as `make down` sends it."""
        os.killpg(self.pid, signal.SIGTERM)

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.terminate_group()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_server(variant: Variant, work_dir: Path, redis_url: str) -> Iterator[ServerProcess]:
    server = ServerProcess(variant, work_dir, redis_url)
    try:
        server.start()
        yield server
    finally:
        server.stop()
