"""Helpers of the Docker-mode tests: the stack handle and the figures.

Imported as `tests.docker.harness` by the tests *and* by this folder's conftest, so the figures
the tests record are the ones the end-of-run summary prints.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gateway_common import variants
from stackctl import docker, images
from stackctl.settings import REPO_ROOT, Settings, load_settings
from tests.conftest import TEST_SELECTION
from tests.prometheus_api import PrometheusQueries

PROJECT = "gateway-lab-test"
UP_TIMEOUT_S = 900
DOWN_TIMEOUT_S = 180
# Its own ports and subnet; RATE_LIMIT_EXEMPT follows the subnet, as .env.example asks, because
# the published port reaches nginx from the network's gateway address.
DOCKER_TEST_ENV = {
    "STACK": "docker",
    "COMPOSE_PROJECT_NAME": PROJECT,
    "STATE_DIR": str(REPO_ROOT / ".run" / "docker-test"),
    # Below Linux's ephemeral range (32768+): a port there may be held by any client socket,
    # such as the other suites' load tests, and the engine's port proxy then cannot bind it.
    "HTTP_PORT": "127.0.0.1:31080",
    "HTTPS_PORT": "127.0.0.1:31443",
    "PROMETHEUS_PORT": "31090",
    "GRAFANA_PORT": "31300",
    "LOCUST_PORT": "31089",
    "GATEWAY_SUBNET": "172.29.0.0/24",
    "RATE_LIMIT_EXEMPT": "172.29.0.0/24",
    "SCALE": "1",
    # Every server variant, one container each, as the native test stack runs them (TEST_VARIANTS
    # narrows both): the contract tests are collected once per variant.
    variants.SELECTION_ENV: TEST_SELECTION,
}
FIGURES: list[str] = []


def figure(line: str) -> None:
    """Record a figure for the end-of-run summary (printed now too, for `pytest -s`)."""
    FIGURES.append(line)
    print(f"[docker] {line}")


@dataclass
class DockerStack(PrometheusQueries):
    """The running compose project, seen from the host as a user sees it."""

    # Replicas appear through DNS discovery (5 s) and a scrape (5 s), on a loaded machine.
    wait_timeout_s = 120.0

    env: dict[str, str]
    settings: Settings = field(init=False)
    outcomes: list[images.Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.settings = load_settings("default", self.env)

    @property
    def public_url(self) -> str:
        return docker.public_url(self.settings)

    @property
    def ws_url(self) -> str:
        return self.public_url.replace("http://", "ws://", 1)

    @property
    def tls_url(self) -> str:
        return f"https://{self.settings.address('https')}"

    @property
    def tls_ca(self) -> Path:
        """The self-signed certificate `make up` made for nginx's TLS port."""
        return self.settings.state_dir / "tls" / "cert.pem"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PROMETHEUS_PORT']}"

    def make(self, target: str, timeout: float = UP_TIMEOUT_S, **extra: str):
        return subprocess.run(
            ["make", "--no-print-directory", target],
            cwd=REPO_ROOT,
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def compose(self, *args: str) -> str:
        return docker.compose_output(self.settings, *args)

    def containers(self) -> list[dict[str, str]]:
        return docker.container_states(self.settings)

    def replica_hosts(self, service: str) -> set[str]:
        return docker.replica_hosts(self.settings, service)
