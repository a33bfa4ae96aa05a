"""`python -m stackctl`: start, stop and inspect the stack in Docker or native mode.

The Makefile's up/down/status/logs targets call this. ``--stack auto`` (the default, or ``STACK``
from the environment) uses Docker when an engine answers and native mode otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from stackctl import capacity, docker, native, tls
from stackctl.addresses import MODE_MARKER, format_env, running_mode, stack_env
from stackctl.settings import Settings, SettingsError, load_settings

MODES = ("auto", "docker", "native")


def _banner(text: str) -> None:
    line = "=" * max(len(text), 40)
    print(f"{line}\n{text}\n{line}", flush=True)


def _choose_mode(requested: str, settings: Settings) -> str:
    if requested in ("docker", "native"):
        return requested
    answers, reason = docker.engine_answers()
    if answers:
        _banner(f"STACK=auto: {reason} answered, starting DOCKER mode (docker compose)")
        return "docker"
    _banner(
        f"STACK=auto: no Docker engine ({reason}).\n"
        "Starting NATIVE mode: nginx, gunicorn, uvicorn and Prometheus as processes on loopback.\n"
        "Grafana runs only in Docker mode. Force a mode with STACK=docker or STACK=native."
    )
    return "native"


def _print_urls(settings: Settings, mode: str) -> None:
    env = stack_env(settings, mode)
    public, prometheus, grafana = env["PUBLIC_URL"], env["PROMETHEUS_URL"], env.get("GRAFANA_URL")
    print(f"\nThe stack is up ({mode} mode):")
    print(f"  landing page        {public}/")
    print(f"  Flask (WSGI)        {public}/wsgi/healthz")
    print(f"  FastAPI (ASGI)      {public}/asgi/healthz   docs: {public}/asgi/docs")
    print(f"  WebSocket echo      {env['WS_URL']}/asgi/ws/echo")
    print(
        f"  TLS, HTTP/2         {env['TLS_URL']}/   (self-signed unless TLS_CERT/TLS_KEY are set)"
    )
    print(f"  Prometheus          {prometheus}/targets")
    if grafana and docker.replica_hosts(settings, "grafana"):
        print(f"  Grafana             {grafana}/")
    elif grafana:
        print("  Grafana             not started: its image is unavailable (see above)")
    else:
        print("  Grafana             Docker mode only")
    if mode == "native":
        print(f"  state and logs      {settings.state_dir}")


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    previous = running_mode(settings)
    mode = previous if previous and args.stack == "auto" else _choose_mode(args.stack, settings)
    if previous and previous != mode:
        print(f"A {previous}-mode stack is already running here; `make down` it first.")
        return 1
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / MODE_MARKER).write_text(mode)
    if mode == "docker":
        code = docker.up(settings)
        if code:
            return code
    else:
        print(f"Starting the native stack (profile {settings.profile}):", flush=True)
        native.up(settings)
    _print_urls(settings, mode)
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    mode = running_mode(settings) or ("native" if args.stack == "auto" else args.stack)
    if mode == "docker":
        code = docker.down(settings)
    else:
        print(f"Stopping the native stack (profile {settings.profile}):", flush=True)
        native.down(settings)
        code = 0
    if code == 0:
        (settings.state_dir / MODE_MARKER).unlink(missing_ok=True)
    return code


def cmd_reload(args: argparse.Namespace, settings: Settings) -> int:
    mode = running_mode(settings)
    if mode is None:
        print(f"no stack is running here (profile {settings.profile}); start it with `make up`")
        return 1
    if mode == "docker":
        return docker.reload(settings)
    print(f"Reloading the native stack (profile {settings.profile}):", flush=True)
    native.reload(settings)
    print("Reloaded: the new config and code are live.")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    mode = running_mode(settings)
    if mode == "docker":
        return docker.status(settings)
    print(f"native stack, profile {settings.profile} ({settings.state_dir}):")
    rows = native.status(settings)
    print(f"  {'component':<17} {'pid':>7}  {'state':<8} {'health':<8} url")
    for row in rows:
        state = "running" if row.running else "stopped"
        health = "ok" if row.healthy else ("failing" if row.running else "-")
        print(f"  {row.name:<17} {row.pid or '-':>7}  {state:<8} {health:<8} {row.url}")
    return 0 if all(row.healthy for row in rows) else 3


def cmd_env(args: argparse.Namespace, settings: Settings) -> int:
    mode = running_mode(settings) or ("docker" if args.stack == "docker" else "native")
    sys.stdout.write(format_env(stack_env(settings, mode)))
    return 0


def cmd_logs(args: argparse.Namespace, settings: Settings) -> int:
    if running_mode(settings) == "docker":
        return docker.logs(settings, args.lines, args.follow)
    files = native.log_files(settings)
    if not files:
        print(f"no logs yet in {settings.logs_dir}; start the stack with `make up`")
        return 0
    if args.follow:
        return subprocess.run(["tail", "-n", str(args.lines), "-F", *map(str, files)]).returncode
    for path in files:
        print(f"==> {path} <==\n{native.tail(path, args.lines)}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackctl", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stack",
        choices=MODES,
        default=os.environ.get("STACK") or "auto",
        help="docker, native, or auto (Docker when an engine answers); default: $STACK or auto",
    )
    parser.add_argument(
        "--profile",
        default=os.environ.get("STACK_PROFILE") or "default",
        help="native profile: default (ports 8080, 9090, ...), test (18080, 19090, ...) or "
        "chaos (28080, 29090, ...: the reliability tests' own stack)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the stack and wait until every component is healthy")
    commands.add_parser("down", help="stop everything `up` started and free its ports")
    commands.add_parser(
        "reload",
        help="re-render the configs and reload nginx, Gunicorn, Uvicorn and Prometheus in place",
    )
    commands.add_parser("status", help="show each component's state and health")
    commands.add_parser(
        "env",
        help="print the stack's addresses as KEY=value lines (PUBLIC_URL, PROMETHEUS_URL, ...), "
        "for `eval` in a shell or `include` in a Makefile",
    )
    logs = commands.add_parser("logs", help="show the components' logs")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true")
    return parser


HANDLERS = {
    "up": cmd_up,
    "down": cmd_down,
    "reload": cmd_reload,
    "status": cmd_status,
    "logs": cmd_logs,
    "env": cmd_env,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.stack not in MODES:
        print(f"stackctl: STACK must be one of {', '.join(MODES)}, got {args.stack!r}")
        return 2
    try:
        settings = load_settings(args.profile)
        return HANDLERS[args.command](args, settings)
    except (
        SettingsError,
        native.NativeStackError,
        capacity.CapacityError,
        tls.TlsError,
    ) as error:
        print(f"stackctl: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stackctl: interrupted; run `make down` to stop what was started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
