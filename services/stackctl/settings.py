"""Addresses and paths of one native stack.

Three profiles share the same layout: ``default`` (what ``make up`` runs), ``test`` (what
``make test`` starts, on ports 10000 higher, so a running demo and the test suite never collide)
and ``chaos`` (the reliability tests' own stack, ports 20000 higher, below Linux's ephemeral
range: those tests stop, kill and reload its processes, so they never touch the shared stack).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from gateway_common import variants

REPO_ROOT = Path(__file__).resolve().parents[2]

BASE_PORTS: dict[str, int] = {
    "public": 8080,
    "https": 8443,
    "nginx_status": 8081,
    "wsgi": 8001,
    "asgi": 8002,
    "wsgi_metrics": 9101,
    "asgi_metrics": 9102,
    "prometheus": 9090,
    "nginx_exporter": 9113,
    "node_exporter": 9100,
    "locust_metrics": 9646,
    "redis": 6379,
    "redis_exporter": 9121,
    # The extra server variants (gateway_common.variants): an app and a metrics port each.
    **{
        name: port
        for variant in variants.VARIANTS
        if not variant.default
        for name, port in (
            (variant.port_name, variants.APP_PORT_BASE + variant.slot),
            (variant.metrics_port_name, variants.METRICS_PORT_BASE + variant.slot),
        )
    },
}
PROFILE_PORT_OFFSETS: dict[str, int] = {"default": 0, "test": 10000, "chaos": 20000}
# Only the ports a user looks at may be moved from the environment, like in Docker mode.
PORT_OVERRIDES: dict[str, str] = {
    "public": "HTTP_PORT",
    "https": "HTTPS_PORT",
    "prometheus": "PROMETHEUS_PORT",
}
HOST = "127.0.0.1"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    profile: str
    ports: dict[str, int]
    state_dir: Path
    repo_root: Path = REPO_ROOT
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    def address(self, name: str) -> str:
        return f"{HOST}:{self.ports[name]}"

    def url(self, name: str, path: str = "") -> str:
        scheme = "https" if name == "https" else "http"
        return f"{scheme}://{self.address(name)}{path}"

    @property
    def redis_url(self) -> str:
        """The chat broker, as the FastAPI service's REDIS_URL takes it (database 0)."""
        return f"redis://{self.address('redis')}/0"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def config_dir(self) -> Path:
        return self.state_dir / "config"

    @property
    def targets_dir(self) -> Path:
        """Prometheus file-discovery directory (Locust registers itself here while it runs)."""
        return self.state_dir / "prometheus-targets"


def load_settings(profile: str = "default", environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    if profile not in PROFILE_PORT_OFFSETS:
        known = ", ".join(PROFILE_PORT_OFFSETS)
        raise SettingsError(f"unknown profile {profile!r}; expected one of: {known}")
    offset = PROFILE_PORT_OFFSETS[profile]
    if env.get("STACK_PORT_OFFSET"):
        # Shifts every profile alike (they stay apart), e.g. to run two test sessions side by
        # side on one machine.
        offset += _parse_offset(env["STACK_PORT_OFFSET"], profile_offset=offset)
    ports = {name: port + offset for name, port in BASE_PORTS.items()}
    if profile == "default":
        for name, variable in PORT_OVERRIDES.items():
            if env.get(variable):
                # Native mode listens on loopback whatever address is given (Docker mode binds it).
                ports[name] = split_bind(variable, env[variable])[1]
    taken: dict[int, str] = {}
    for name, port in ports.items():
        if port in taken:
            raise SettingsError(f"{name} and {taken[port]} would both listen on port {port}")
        taken[port] = name
    state_dir = Path(env.get("STATE_DIR") or REPO_ROOT / ".run" / profile).resolve()
    return Settings(profile=profile, ports=ports, state_dir=state_dir, environ=env)


def _parse_offset(raw: str, profile_offset: int) -> int:
    highest = max(BASE_PORTS.values()) + profile_offset
    try:
        offset = int(raw)
    except ValueError:
        raise SettingsError(f"STACK_PORT_OFFSET must be an integer, got {raw!r}") from None
    if not 0 <= offset <= 65535 - highest:
        raise SettingsError(f"STACK_PORT_OFFSET must be between 0 and {65535 - highest}")
    return offset


def split_bind(variable: str, raw: str) -> tuple[str | None, int]:
    """``PORT`` or ``ADDRESS:PORT`` (as compose's published ports take it) -> (address, port)."""
    address, sep, port = raw.strip().rpartition(":")
    if sep and address:
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise SettingsError(
                f"{variable} must be PORT or ADDRESS:PORT (e.g. 127.0.0.1:8080), got {raw!r}"
            ) from None
        return address, _parse_port(variable, port)
    return None, _parse_port(variable, raw)


def _parse_port(variable: str, raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        raise SettingsError(f"{variable} must be a port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise SettingsError(f"{variable} must be between 1 and 65535, got {port}")
    return port
