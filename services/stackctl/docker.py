"""Docker mode: a thin wrapper over `docker compose`, so `make` reads the same in both modes.

`up` makes sure every pinned image exists (pulled, or a loudly reported stand-in: see
stackctl.images), starts every service whose image exists, waits until all are healthy, and
then until nginx has answered from every app replica (`SCALE=N`; docs/docker.md).

The server variants (`VARIANTS`, gateway_common.variants) are compose profiles: `all` is the
profile `matrix`, a name is its own profile. `up` records the selection in the state folder, as
native mode does, so `reload`, `status` and `down` act on what runs.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import yaml

from gateway_common import variants
from gateway_common.settings import ConfigError
from gateway_common.variants import Variant
from stackctl import images, routes, tls
from stackctl.engine import compose_version, engine_answers
from stackctl.native import SELECTION_FILE, record_selection
from stackctl.settings import Settings, SettingsError, split_bind

__all__ = ["engine_answers", "up", "down", "reload", "status", "logs"]

ROUTING_TIMEOUT_S = 60
# Secrets get no default anywhere; compose refuses to start without them.
REQUIRED_SETTINGS = ("GRAFANA_ADMIN_PASSWORD",)
# Services reloaded in place by SIGHUP: nginx (new config, graceful worker swap), Gunicorn (new
# workers with fresh code, old ones stopped gracefully), Uvicorn (one replacement worker at a
# time) and Prometheus (config and rules). tini (`init: true`) passes the signal on. Not the
# variants: Hypercorn, Daphne and Tornado stop on SIGHUP; their new code needs `make up`.
RELOADED_BY_SIGHUP = ("nginx", "flask", "fastapi", "prometheus")
# The compose profile of every server variant (`VARIANTS=all`); each is also in its own name's.
ALL_VARIANTS_PROFILE = "matrix"
PROFILES_ENV = "COMPOSE_PROFILES"


def _compose_command(settings: Settings, *args: str) -> list[str]:
    return ["docker", "compose", "--project-directory", str(settings.repo_root), *args]


def dot_env(settings: Settings) -> dict[str, str]:
    """The variables of the repository's `.env`, which compose reads too."""
    env_file = settings.repo_root / ".env"
    values: dict[str, str] = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.lstrip().startswith("#"):
                values[name.strip()] = value.strip()
    return values


def _parse_selection(raw: str) -> tuple[Variant, ...]:
    try:
        return variants.parse_selection(raw)
    except ConfigError as error:
        raise SettingsError(str(error)) from None


def requested_selection(settings: Settings) -> tuple[Variant, ...]:
    """What `up` starts: VARIANTS from the environment, else from .env, else the last `up`'s."""
    raw = settings.environ.get(variants.SELECTION_ENV)
    if raw is None:
        raw = dot_env(settings).get(variants.SELECTION_ENV)
    recorded = settings.state_dir / SELECTION_FILE
    if raw is None and recorded.exists():
        raw = recorded.read_text().strip()
    return _parse_selection(raw or "")


def selection(settings: Settings) -> tuple[Variant, ...]:
    """What runs: the selection `up` recorded, else the requested one."""
    recorded = settings.state_dir / SELECTION_FILE
    if recorded.exists():
        return _parse_selection(recorded.read_text().strip())
    return requested_selection(settings)


def variant_profiles(chosen: tuple[Variant, ...]) -> list[str]:
    """The compose profiles that start the chosen variants: `matrix` for all, else their names."""
    names = [variant.name for variant in routes.extra(chosen)]
    if names and set(names) == set(variants.EXTRA_NAMES):
        return [ALL_VARIANTS_PROFILE]
    return names


def compose_env(settings: Settings) -> dict[str, str]:
    """The environment of every compose call: the same certificate paths whatever the call is,
    or compose would see nginx's mounts change and recreate it; the selected variants as
    VARIANTS (the `config` service routes them) and as profiles (compose starts them)."""
    certificate = tls.certificate_paths(settings.state_dir, settings.environ)
    chosen = selection(settings)
    profiles = [p.strip() for p in settings.environ.get(PROFILES_ENV, "").split(",") if p.strip()]
    profiles += variant_profiles(chosen)
    return {
        **settings.environ,
        tls.CERT_ENV: str(certificate.cert),
        tls.KEY_ENV: str(certificate.key),
        variants.SELECTION_ENV: ",".join(variant.name for variant in routes.extra(chosen)),
        PROFILES_ENV: ",".join(dict.fromkeys(profiles)),
    }


def compose(settings: Settings, *args: str) -> int:
    command = _compose_command(settings, *args)
    return subprocess.run(
        command, cwd=settings.repo_root, env=compose_env(settings), stdin=subprocess.DEVNULL
    ).returncode


def compose_output(settings: Settings, *args: str) -> str:
    result = subprocess.run(
        _compose_command(settings, *args),
        cwd=settings.repo_root,
        env=compose_env(settings),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    return result.stdout if result.returncode == 0 else ""


def missing_required_settings(settings: Settings) -> list[str]:
    """Variables the compose file requires (no default on purpose) that neither env nor .env set."""
    from_file = dot_env(settings)
    return [
        name
        for name in REQUIRED_SETTINGS
        if not (settings.environ.get(name) or from_file.get(name))
    ]


def default_services(settings: Settings) -> list[str]:
    """The services `docker compose up` starts with no profile named."""
    spec = yaml.safe_load((settings.repo_root / "docker-compose.yml").read_text())
    return [name for name, service in spec["services"].items() if not service.get("profiles")]


def preflight(settings: Settings) -> str | None:
    """Why Docker mode cannot start here, or None."""
    missing = missing_required_settings(settings)
    if missing:
        return (
            f"Docker mode needs {', '.join(missing)}: copy .env.example to .env and set "
            "them (there is no default secret), or run STACK=native make up."
        )
    answers, reason = engine_answers()
    if not answers:
        return (
            f"no Docker engine answers ({reason}). Start one (as root on Debian: `make "
            "docker-deps`, then `.venv/bin/python -m stackctl.engine start`), or run "
            "STACK=native make up."
        )
    if compose_version() is None:
        return "the Compose v2 CLI plugin is missing (`docker compose`): run `make docker-deps`"
    return None


def up(settings: Settings) -> int:
    problem = preflight(settings)
    if problem:
        print(problem)
        return 2
    print("Images (a real pull is always preferred):", flush=True)
    try:
        outcomes = images.ensure_all(settings.state_dir / "images.log")
    except images.ImageError as error:
        print(f"stackctl: {error}")
        return 1
    summary = images.report(outcomes)
    if summary:
        print(summary, flush=True)
    # The TLS port's certificate, made on this host like natively and bind-mounted into nginx.
    tls.ensure_certificate(settings.state_dir, settings.environ)
    skipped = set(images.unavailable_services(outcomes))
    chosen = requested_selection(settings)
    previous = selection(settings) if (settings.state_dir / SELECTION_FILE).exists() else None
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    record_selection(settings, chosen)
    extra = [variant.name for variant in routes.extra(chosen)]
    # Variants started by an earlier `up` and not chosen now: nginx would no longer route them.
    # (Never an empty list: `rm --stop` without names stops every service.)
    dropped = [name for name in variants.EXTRA_NAMES if name not in extra]
    if dropped:
        code = compose(settings, "--profile", "*", "rm", "--stop", "--force", *dropped)
        if code:
            return code
    services = [name for name in default_services(settings) if name not in skipped] + extra
    code = compose(settings, "up", "--build", "--wait", "--detach", "--remove-orphans", *services)
    if code:
        return code
    if previous not in (None, chosen):
        # `config` has just rendered the new selection's routes and targets; a running nginx
        # and Prometheus still serve the previous ones until they reload.
        code = compose(settings, "kill", "-s", "HUP", "nginx", "prometheus")
        if code:
            return code
    # nginx re-resolves the service names every few seconds (nginx.conf.template): replicas
    # that SCALE just added take that long to get traffic.
    return wait_until_routed(settings)


def public_url(settings: Settings) -> str:
    address, port = split_bind("HTTP_PORT", settings.environ.get("HTTP_PORT") or "8080")
    host = "127.0.0.1" if address in (None, "0.0.0.0", "::", "[::]") else address
    return f"http://{host}:{port}"


def replica_hosts(settings: Settings, service: str) -> set[str]:
    """The hostnames of a service's containers: compose leaves them at the short container id."""
    return {cid[:12] for cid in compose_output(settings, "ps", "--quiet", service).split()}


def wait_until_routed(settings: Settings, timeout_s: float = ROUTING_TIMEOUT_S) -> int:
    """Return once nginx has answered from every replica of each app service and variant."""
    deadline = time.monotonic() + timeout_s
    for variant in selection(settings):
        service, prefix = variant.name, variant.prefix
        expected = replica_hosts(settings, service)
        seen: set[str] = set()
        while not expected <= seen:
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(expected - seen))
                print(f"nginx routes to no {service} replica {missing} after {timeout_s:.0f} s")
                return 1
            try:
                url = f"{public_url(settings)}{prefix}/healthz"
                with urllib.request.urlopen(url, timeout=5) as answer:
                    seen.add(json.load(answer)["host"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
    return 0


def down(settings: Settings) -> int:
    # Every profile, so the variants and a Locust started with `--profile loadtest` go too.
    code = compose(settings, "--profile", "*", "down", "--remove-orphans")
    if code == 0:
        (settings.state_dir / SELECTION_FILE).unlink(missing_ok=True)
    return code


def reload(settings: Settings) -> int:
    """Re-render the configs into the shared volume, check nginx's, then SIGHUP in place.

    New *images* (a code change) need `make up` again, which recreates the containers; nginx
    retries idempotent requests on the next attempt meanwhile.
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


def container_states(settings: Settings) -> list[dict[str, str]]:
    """`docker compose ps` as records (service, name, state, health), for tests and `status`."""
    raw = compose_output(settings, "ps", "--all", "--format", "json")
    rows: list[dict[str, str]] = []
    for line in raw.splitlines():
        line = line.strip()
        if line:
            parsed = json.loads(line)
            rows.extend(parsed if isinstance(parsed, list) else [parsed])
    return rows


def logs(settings: Settings, lines: int, follow: bool) -> int:
    return compose(settings, "logs", f"--tail={lines}", *(["--follow"] if follow else []))
