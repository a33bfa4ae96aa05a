"""Docker mode: a thin wrapper over `docker compose`, so `make` reads the same in both modes."""

from __future__ import annotations

import shutil
import subprocess

from stackctl.settings import Settings

ENGINE_PROBE_TIMEOUT_S = 10


def engine_answers() -> tuple[bool, str]:
    """Whether a Docker engine answers, and why not when it does not."""
    if shutil.which("docker") is None:
        return False, "no docker CLI on PATH"
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=ENGINE_PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return False, f"`docker info` did not answer within {ENGINE_PROBE_TIMEOUT_S} s"
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        return False, reason[-1] if reason else f"`docker info` exited {probe.returncode}"
    return True, f"Docker engine {probe.stdout.strip()}"


def compose(settings: Settings, *args: str) -> int:
    command = ["docker", "compose", "--project-directory", str(settings.repo_root), *args]
    return subprocess.run(command, cwd=settings.repo_root, stdin=subprocess.DEVNULL).returncode


def missing_required_settings(settings: Settings) -> list[str]:
    """Variables the compose file requires (no default on purpose) that neither env nor .env set."""
    env_file = settings.repo_root / ".env"
    from_file: dict[str, str] = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.lstrip().startswith("#"):
                from_file[name.strip()] = value.strip()
    return [
        name
        for name in REQUIRED_SETTINGS
        if not (settings.environ.get(name) or from_file.get(name))
    ]


# Secrets get no default anywhere; compose refuses to start without them.
REQUIRED_SETTINGS = ("GRAFANA_ADMIN_PASSWORD",)


def up(settings: Settings) -> int:
    missing = missing_required_settings(settings)
    if missing:
        print(
            f"Docker mode needs {', '.join(missing)}: copy .env.example to .env and set "
            "them (there is no default secret), or run STACK=native make up."
        )
        return 2
    return compose(settings, "up", "--build", "--wait", "--detach")


def down(settings: Settings) -> int:
    return compose(settings, "down", "--remove-orphans")


# Services reloaded in place by SIGHUP: nginx (new config, graceful worker swap), Gunicorn (new
# workers with fresh code, old ones stopped gracefully), Uvicorn (one replacement worker at a
# time) and Prometheus (config and rules). tini (`init: true`) passes the signal on.
RELOADED_BY_SIGHUP = ("nginx", "flask", "fastapi", "prometheus")


def reload(settings: Settings) -> int:
    """Re-render the configs into the shared volume, check nginx's, then SIGHUP in place.

    New *images* (a code change) need `docker compose up -d --build`, which recreates the
    containers; nginx retries idempotent requests on the next attempt meanwhile.
    """
    code = compose(settings, "run", "--rm", "--no-deps", "config")
    if code:
        return code
    check = ["exec", "-T", "nginx", "nginx", "-t", "-q", "-c", "/rendered/nginx/nginx.conf"]
    code = compose(settings, *check)
    if code:
        print("nginx refuses the re-rendered config; nothing was reloaded")
        return code
    return compose(settings, "kill", "-s", "HUP", *RELOADED_BY_SIGHUP)


def status(settings: Settings) -> int:
    return compose(settings, "ps")


def logs(settings: Settings, lines: int, follow: bool) -> int:
    return compose(settings, "logs", f"--tail={lines}", *(["--follow"] if follow else []))
