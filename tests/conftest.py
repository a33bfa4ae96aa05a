"""Shared fixtures. `stack` starts the real native stack (profile `test`: ports 18080, ...)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway_common import variants
from stackctl.settings import REPO_ROOT, Settings, load_settings
from tests.prometheus_api import PrometheusQueries

STACK_START_TIMEOUT_S = 180
# The test stack runs every server variant, so the contract is checked on each of them.
# TEST_VARIANTS (names, as VARIANTS takes them) narrows it while working on one variant.
TEST_SELECTION = os.environ.get("TEST_VARIANTS") or variants.ALL
TEST_VARIANTS = variants.parse_selection(TEST_SELECTION)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `last` run after all others, in their collected order (a stable sort)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@dataclass(frozen=True)
class StackHandle(PrometheusQueries):
    settings: Settings

    @property
    def public_url(self) -> str:
        return self.settings.url("public")

    @property
    def ws_url(self) -> str:
        return self.public_url.replace("http://", "ws://", 1)

    @property
    def tls_url(self) -> str:
        return self.settings.url("https")

    @property
    def tls_ca(self) -> Path:
        """The TLS port's self-signed certificate, which clients trust as its own CA."""
        return self.settings.state_dir / "tls" / "cert.pem"

    @property
    def prometheus_url(self) -> str:
        return self.settings.url("prometheus")

    @property
    def wsgi_metrics_url(self) -> str:
        return self.settings.url("wsgi_metrics", "/metrics")

    @property
    def asgi_metrics_url(self) -> str:
        return self.settings.url("asgi_metrics", "/metrics")

    @property
    def nginx_status_url(self) -> str:
        return self.settings.url("nginx_status", "/stub_status")

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    @property
    def targets_dir(self) -> Path:
        return self.settings.targets_dir

    @property
    def logs_dir(self) -> Path:
        return self.settings.logs_dir

    def targets(self, job: str) -> list[dict]:
        """The stack's Prometheus's active targets of one job."""
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/targets", timeout=10) as resp:
            body = json.load(resp)
        return [t for t in body["data"]["activeTargets"] if t["labels"].get("job") == job]


def stackctl(*args: str, timeout: float = STACK_START_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stackctl", "--stack", "native", "--profile", "test", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, variants.SELECTION_ENV: TEST_SELECTION},
    )


@pytest.fixture(scope="session")
def stack() -> Iterator[StackHandle]:
    settings = load_settings("test")
    # A stack left over by an interrupted run would hold the ports; stop it first.
    stackctl("down", timeout=120)
    started = stackctl("up")
    if started.returncode != 0:
        logs = stackctl("logs", "--lines", "30", timeout=30).stdout
        stackctl("down", timeout=120)
        pytest.fail(
            f"native test stack did not start:\n{started.stdout}\n{started.stderr}\n{logs}",
            pytrace=False,
        )
    try:
        yield StackHandle(settings)
    finally:
        stopped = stackctl("down", timeout=120)
        assert stopped.returncode == 0, f"make down failed:\n{stopped.stdout}\n{stopped.stderr}"
