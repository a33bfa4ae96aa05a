"""The running stack's addresses, and the variables other tools need to reach it.

One source for every tool: `python -m stackctl env` prints them as ``KEY=value`` lines (for
``eval`` in a shell, or ``include`` in a Makefile), the Makefile's bench and locust targets
export them, the bench takes its default URLs from :func:`running_stack_env`, and `make up`
prints its URLs from it. They follow the profile, ``STACK_PORT_OFFSET``, ``HTTP_PORT``,
``PROMETHEUS_PORT`` and ``STATE_DIR``, like the stack itself.
"""

from __future__ import annotations

import shlex

from stackctl import docker
from stackctl.settings import BASE_PORTS, HOST, Settings, split_bind

#: File in the state directory naming the mode `up` last started (docker or native).
MODE_MARKER = "mode"
DOCKER_GRAFANA_PORT = 3000


def running_mode(settings: Settings) -> str | None:
    """The mode `up` last started here, so later commands act on the same stack."""
    try:
        return (settings.state_dir / MODE_MARKER).read_text().strip() or None
    except OSError:
        return None


def stack_env(settings: Settings, mode: str) -> dict[str, str]:
    """Addresses of the stack ``mode`` runs for ``settings``, as environment variables."""
    if mode == "docker":
        # Compose publishes only the public ports, Prometheus and Grafana (docker-compose.yml);
        # the Locust exporter and its file discovery live inside the compose network.
        public = docker.public_url(settings)
        _, http_port = split_bind("HTTP_PORT", _docker_port(settings, "HTTP_PORT", "public"))
        _, prometheus_port = split_bind(
            "PROMETHEUS_PORT", _docker_port(settings, "PROMETHEUS_PORT", "prometheus")
        )
        grafana_port = settings.environ.get("GRAFANA_PORT") or str(DOCKER_GRAFANA_PORT)
        _, https_port = split_bind("HTTPS_PORT", _docker_port(settings, "HTTPS_PORT", "https"))
        return {
            "STACK_MODE": mode,
            "HTTP_PORT": str(http_port),
            "HTTPS_PORT": str(https_port),
            "PROMETHEUS_PORT": str(prometheus_port),
            "PUBLIC_URL": public,
            "WS_URL": public.replace("http://", "ws://", 1),
            "TLS_URL": f"https://{HOST}:{https_port}",
            "PROMETHEUS_URL": f"http://{HOST}:{prometheus_port}",
            "GRAFANA_URL": f"http://{HOST}:{grafana_port}",
        }
    return {
        "STACK_MODE": "native",
        "STACK_PROFILE": settings.profile,
        "STATE_DIR": str(settings.state_dir),
        "HTTP_PORT": str(settings.ports["public"]),
        "HTTPS_PORT": str(settings.ports["https"]),
        "PROMETHEUS_PORT": str(settings.ports["prometheus"]),
        "PUBLIC_URL": settings.url("public"),
        "WS_URL": f"ws://{settings.address('public')}",
        "TLS_URL": settings.url("https"),
        "PROMETHEUS_URL": settings.url("prometheus"),
        # Where Locust's exporter listens and announces itself to Prometheus (file discovery).
        "LOCUST_METRICS_BIND": settings.address("locust_metrics"),
        "PROMETHEUS_TARGETS_DIR": str(settings.targets_dir),
    }


def _docker_port(settings: Settings, variable: str, port_name: str) -> str:
    return settings.environ.get(variable) or str(BASE_PORTS[port_name])


def running_stack_env(settings: Settings) -> dict[str, str]:
    """:func:`stack_env` of the running stack (native when none runs: its addresses are fixed)."""
    return stack_env(settings, running_mode(settings) or "native")


def format_env(env: dict[str, str]) -> str:
    """``KEY=value`` lines; a value is quoted only when a shell needs it (Make reads the rest)."""
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in env.items())
