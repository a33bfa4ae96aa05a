"""Native mode: the real processes of the stack on loopback, from the same templates as Docker.

nginx, Prometheus, Redis (the chat broker) and the exporters come from Debian's packages;
Gunicorn and Uvicorn from the project's virtual environment. Every process runs in its own
session with a pid file, a log file and a health URL under one state directory
(``.run/<profile>``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway_common import variants
from gateway_common.settings import ConfigError
from gateway_common.variants import Variant
from stackctl import capacity, processes, routes, tls
from stackctl.render import render_file, static_discovery
from stackctl.settings import HOST, Settings

HEALTH_TIMEOUT_S = 60.0
TARGETS_UP_TIMEOUT_S = 30.0
# Longer than Gunicorn's and Uvicorn's 30 s graceful timeout (and nginx's worker_shutdown_timeout),
# so in-flight requests can finish.
STOP_GRACE_S = 35.0
# How long `reload` waits for the servers to have replaced their workers.
RELOAD_TIMEOUT_S = 60.0
# Clients that the per-client rate and connection limits never apply to (one CIDR). Natively the
# test suite and `make bench` run from 127.0.0.1, so that address is exempt; any other loopback
# address (127.0.0.2, ...) is limited like a remote client. RATE_LIMIT_EXEMPT overrides it;
# 0.0.0.0/32 (an address no client has) exempts nobody.
DEFAULT_RATE_LIMIT_EXEMPT = "127.0.0.1/32"


class NativeStackError(RuntimeError):
    pass


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]
    health_url: str
    port_names: tuple[str, ...]
    env: dict[str, str]

    def pid_path(self, settings: Settings) -> Path:
        return settings.pids_dir / f"{self.name}.pid"

    def log_path(self, settings: Settings) -> Path:
        return settings.logs_dir / f"{self.name}.log"


# Debian package names, and what to install elsewhere, for each outside program.
SYSTEM_PROGRAMS: dict[str, tuple[str, str]] = {
    "nginx": ("nginx", "brew install nginx"),
    "prometheus": ("prometheus", "brew install prometheus"),
    "prometheus-nginx-exporter": (
        "prometheus-nginx-exporter",
        "brew install nginx-prometheus-exporter",
    ),
    "prometheus-node-exporter": ("prometheus-node-exporter", "brew install node_exporter"),
    "redis-server": ("redis-server", "brew install redis"),
    "prometheus-redis-exporter": ("prometheus-redis-exporter", "brew install redis_exporter"),
}


def find_program(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        package, mac = SYSTEM_PROGRAMS[name]
        raise NativeStackError(
            f"'{name}' is not installed. On Debian/Ubuntu: sudo apt-get install {package} "
            f"(or run `make setup` as root); on macOS: {mac}."
        )
    return found


def _nginx_worker_dir(settings: Settings) -> tuple[Path, str]:
    """Where nginx workers read the landing page and write temp files, and the user they run as.

    Run as root, nginx drops its workers to ``nobody``, who may not be able to traverse the
    checkout (a 0700 temp dir, say); the workers' files are then staged in a world-readable place.
    """
    if os.geteuid() != 0:
        return settings.state_dir / "nginx", ""
    digest = hashlib.sha256(str(settings.state_dir).encode()).hexdigest()[:12]
    staged = Path("/tmp") / f"gateway-lab-nginx-{settings.profile}-{digest}"
    return staged, "user nobody nogroup;"


def _prepare_nginx(settings: Settings) -> tuple[Path, dict[str, str]]:
    run_dir, user_directive = _nginx_worker_dir(settings)
    html_dir = run_dir / "html"
    # Copied over in place (never removed first): `reload` re-renders while nginx serves.
    shutil.copytree(settings.repo_root / "nginx" / "html", html_dir, dirs_exist_ok=True)
    run_dir.chmod(0o755)
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / temp).mkdir(parents=True, exist_ok=True)
        if user_directive:
            nobody = pwd.getpwnam("nobody")
            os.chown(run_dir / temp, nobody.pw_uid, nobody.pw_gid)
    certificate = tls.ensure_certificate(settings.state_dir, settings.environ)
    values = {
        **edge_limits(settings).nginx_values(),
        "NGINX_TLS_LISTEN": settings.address("https"),
        "NGINX_TLS_CERT": str(certificate.cert),
        "NGINX_TLS_KEY": str(certificate.key),
        "NGINX_RUN_DIR": str(run_dir),
        "NGINX_ERROR_LOG": str(settings.logs_dir / "nginx-error.log"),
        "NGINX_ACCESS_LOG": str(settings.logs_dir / "nginx-access.log"),
        "NGINX_USER_DIRECTIVE": user_directive,
        "NGINX_HTML_DIR": str(html_dir),
        "NGINX_PUBLIC_LISTEN": settings.address("public"),
        "NGINX_STATUS_LISTEN": settings.address("nginx_status"),
        "NGINX_STATUS_ALLOW": "127.0.0.1",
        "WSGI_UPSTREAM": settings.address("wsgi"),
        "ASGI_UPSTREAM": settings.address("asgi"),
        # One process per service on loopback: the upstream groups, no run-time resolution.
        "WSGI_BACKEND": "wsgi_service",
        "ASGI_BACKEND": "asgi_service",
        "NGINX_RESOLVER_DIRECTIVE": "",
        "RATE_LIMIT_EXEMPT": rate_limit_exempt(settings),
        # The lab page's fixed-query path (/lab/metrics.json) asks this Prometheus.
        "PROMETHEUS_UPSTREAM": settings.address("prometheus"),
        **variant_values(settings),
    }
    return run_dir, values


# Where the selection of `make up` is kept, so `reload`, `status` and the bench see the same
# variants without VARIANTS in their environment.
SELECTION_FILE = "variants"


def selection(settings: Settings) -> tuple[Variant, ...]:
    """The selected variants: VARIANTS if set, else what `up` recorded, else the default two."""
    raw = settings.environ.get(variants.SELECTION_ENV)
    if raw is None:
        recorded = settings.state_dir / SELECTION_FILE
        raw = recorded.read_text().strip() if recorded.exists() else ""
    try:
        return variants.parse_selection(raw)
    except ConfigError as error:
        raise NativeStackError(str(error)) from None


def record_selection(settings: Settings, chosen: tuple[Variant, ...]) -> None:
    names = ",".join(variant.name for variant in chosen if not variant.default)
    (settings.state_dir / SELECTION_FILE).write_text(names + "\n")


def variant_values(settings: Settings) -> dict[str, str]:
    """The template values of the selected variants' routes, targets and /variants.json."""
    chosen = selection(settings)
    return routes.template_values(
        chosen,
        settings.environ,
        backend=routes.native_upstream_name,
        upstreams=routes.nginx_upstreams(chosen, lambda v: settings.address(v.port_name)),
        metrics_discovery=routes.prometheus_discovery(
            [settings.address(v.metrics_port_name) for v in routes.extra(chosen)]
        ),
    )


def edge_limits(settings: Settings) -> capacity.EdgeLimits:
    """The connection limits, from this machine's per-process hard limit on open files."""
    try:
        return capacity.limits_from_env(settings.environ, capacity.native_nofile())
    except capacity.CapacityError as error:
        raise NativeStackError(str(error)) from None


def rate_limit_exempt(settings: Settings) -> str:
    raw = settings.environ.get("RATE_LIMIT_EXEMPT") or DEFAULT_RATE_LIMIT_EXEMPT
    try:
        return str(ipaddress.ip_network(raw.strip(), strict=False))
    except ValueError:
        raise NativeStackError(
            f"RATE_LIMIT_EXEMPT must be one IPv4/IPv6 address or CIDR, got {raw!r}"
        ) from None


def prometheus_values(settings: Settings) -> dict[str, str]:
    return {
        "PROMETHEUS_SELF_TARGET": settings.address("prometheus"),
        "WSGI_METRICS_DISCOVERY": static_discovery(settings.address("wsgi_metrics")),
        "ASGI_METRICS_DISCOVERY": static_discovery(settings.address("asgi_metrics")),
        "NGINX_EXPORTER_TARGET": settings.address("nginx_exporter"),
        "NODE_EXPORTER_TARGET": settings.address("node_exporter"),
        "REDIS_EXPORTER_TARGET": settings.address("redis_exporter"),
        "CADVISOR_DISCOVERY": "static_configs: [{targets: []}]",
        "PROMETHEUS_RULES_DIR": str(settings.repo_root / "monitoring" / "prometheus" / "rules"),
        "PROMETHEUS_TARGETS_DIR": str(settings.targets_dir),
        **variant_values(settings),
    }


@dataclass(frozen=True)
class RenderedConfigs:
    """What `render_configs` wrote: the paths the processes are then pointed at."""

    nginx_conf: Path
    nginx_run_dir: Path
    prometheus_yml: Path
    redis_conf: Path


def render_configs(settings: Settings) -> RenderedConfigs:
    """Render the nginx, Prometheus and Redis configs into the state directory."""
    run_dir, nginx_values = _prepare_nginx(settings)
    nginx_conf = settings.config_dir / "nginx.conf"
    render_file(
        settings.repo_root / "nginx" / "templates" / "nginx.conf.template", nginx_conf, nginx_values
    )
    prometheus_yml = settings.config_dir / "prometheus.yml"
    render_file(
        settings.repo_root / "monitoring" / "prometheus" / "prometheus.yml.template",
        prometheus_yml,
        prometheus_values(settings),
    )
    return RenderedConfigs(
        nginx_conf=nginx_conf,
        nginx_run_dir=run_dir,
        prometheus_yml=prometheus_yml,
        redis_conf=render_redis_conf(settings),
    )


def redis_values(settings: Settings) -> dict[str, str]:
    return {
        "REDIS_BIND": HOST,
        "REDIS_PORT": str(settings.ports["redis"]),
        "REDIS_PROTECTED_MODE": "yes",  # loopback only: nobody else could connect anyway
        "REDIS_DIR": str(redis_dir(settings)),
    }


def redis_dir(settings: Settings) -> Path:
    """Redis's working directory; it stays empty (no persistence)."""
    return settings.state_dir / "redis"


def render_redis_conf(settings: Settings) -> Path:
    redis_conf = settings.config_dir / "redis.conf"
    render_file(
        settings.repo_root / "services" / "redis" / "redis.conf.template",
        redis_conf,
        redis_values(settings),
    )
    return redis_conf


def service_env(settings: Settings) -> dict[str, str]:
    """Environment of both Python services; worker counts etc. pass through from the user."""
    env = {
        key: value
        for key, value in settings.environ.items()
        if not key.startswith(("PROMETHEUS_MULTIPROC_DIR", "STATE_DIR"))
    }
    env.update(
        {
            "WSGI_BIND": settings.address("wsgi"),
            "WSGI_METRICS_BIND": settings.address("wsgi_metrics"),
            "ASGI_BIND": settings.address("asgi"),
            "ASGI_METRICS_BIND": settings.address("asgi_metrics"),
            "FORWARDED_ALLOW_IPS": "127.0.0.1",
            "REDIS_URL": settings.redis_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# The one table of health probes: (port name, path) per component, in start order, read by
# `components` (start-up and reload) and by `status`. A None path: the port speaks Redis, and the
# probe is a PING to the broker's URL.
HEALTH_PROBES: dict[str, tuple[str, str | None]] = {
    "redis": ("redis", None),
    "redis-exporter": ("redis_exporter", "/metrics"),
    "flask": ("wsgi", "/healthz"),
    "fastapi": ("asgi", "/healthz"),
    "nginx": ("nginx_status", "/healthz"),
    "nginx-exporter": ("nginx_exporter", "/metrics"),
    "node-exporter": ("node_exporter", "/metrics"),
    "prometheus": ("prometheus", "/-/ready"),
}


def health_probes(settings: Settings) -> dict[str, tuple[str, str | None]]:
    """HEALTH_PROBES, with the selected extra variants before nginx (in start order)."""
    probes = dict(HEALTH_PROBES)
    ordered: dict[str, tuple[str, str | None]] = {}
    for name, probe in probes.items():
        if name == "nginx":
            for variant in routes.extra(selection(settings)):
                ordered[variant.name] = (variant.port_name, "/healthz")
        ordered[name] = probe
    return ordered


def probe_url(settings: Settings, name: str) -> str:
    """An http:// URL that must answer 2xx, or the redis:// URL that must answer PING."""
    port_name, path = health_probes(settings)[name]
    if path is None:
        return settings.redis_url
    return settings.url(port_name, path)


def variant_component(
    settings: Settings, variant: Variant, env: dict[str, str], metrics_root: Path
) -> Component:
    """One extra variant's server, started by its registry command from the repository root."""
    return Component(
        name=variant.name,
        argv=[sys.executable, *variant.command],
        health_url=settings.url(variant.port_name, "/healthz"),
        port_names=(variant.port_name, variant.metrics_port_name),
        env={
            **env,
            **variant.server_env(
                settings.address(variant.port_name), settings.address(variant.metrics_port_name)
            ),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_root / variant.name),
        },
    )


def components(settings: Settings, rendered: RenderedConfigs) -> list[Component]:
    """Every process of the native stack, in start order, pointed at the rendered configs."""
    bin_dir = Path(sys.executable).parent
    env = service_env(settings)
    metrics_root = settings.state_dir / "multiproc"
    plain_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    return [
        # First: the FastAPI workers find their chat broker up when they start.
        Component(
            name="redis",
            argv=[find_program("redis-server"), str(rendered.redis_conf)],
            health_url=probe_url(settings, "redis"),
            port_names=("redis",),
            env=plain_env,
        ),
        Component(
            name="redis-exporter",
            argv=[
                find_program("prometheus-redis-exporter"),
                f"-redis.addr={settings.redis_url}",
                f"-web.listen-address={settings.address('redis_exporter')}",
            ],
            health_url=probe_url(settings, "redis-exporter"),
            port_names=("redis_exporter",),
            env=plain_env,
        ),
        Component(
            name="flask",
            argv=[
                str(bin_dir / "gunicorn"),
                "-c",
                str(settings.repo_root / "services" / "flask_app" / "gunicorn.conf.py"),
            ],
            health_url=probe_url(settings, "flask"),
            port_names=("wsgi", "wsgi_metrics"),
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_root / "flask")},
        ),
        Component(
            name="fastapi",
            argv=[sys.executable, "-m", "fastapi_app.serve"],
            health_url=probe_url(settings, "fastapi"),
            port_names=("asgi", "asgi_metrics"),
            env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_root / "fastapi")},
        ),
        *(
            variant_component(settings, variant, env, metrics_root)
            for variant in routes.extra(selection(settings))
        ),
        Component(
            name="nginx",
            argv=nginx_command(settings, rendered, "-g", "daemon off;"),
            health_url=probe_url(settings, "nginx"),
            port_names=("public", "https", "nginx_status"),
            env=plain_env,
        ),
        Component(
            name="nginx-exporter",
            argv=[
                find_program("prometheus-nginx-exporter"),
                f"-nginx.scrape-uri={settings.url('nginx_status', '/stub_status')}",
                f"-web.listen-address={settings.address('nginx_exporter')}",
                # nginx may still be binding its ports: retry instead of exiting at once.
                "-nginx.retries=40",
                "-nginx.retry-interval=250ms",
            ],
            health_url=probe_url(settings, "nginx-exporter"),
            port_names=("nginx_exporter",),
            env=plain_env,
        ),
        Component(
            name="node-exporter",
            argv=[
                find_program("prometheus-node-exporter"),
                f"--web.listen-address={settings.address('node_exporter')}",
                # The textfile collector's Debian default dir may not exist outside systemd.
                "--no-collector.textfile",
                "--no-collector.systemd",
            ],
            health_url=probe_url(settings, "node-exporter"),
            port_names=("node_exporter",),
            env=plain_env,
        ),
        Component(
            name="prometheus",
            argv=[
                find_program("prometheus"),
                f"--config.file={rendered.prometheus_yml}",
                f"--storage.tsdb.path={settings.state_dir / 'prometheus-data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address={settings.address('prometheus')}",
            ],
            health_url=probe_url(settings, "prometheus"),
            port_names=("prometheus",),
            env=plain_env,
        ),
    ]


def _healthy(url: str) -> bool:
    if url.startswith("redis://"):
        return _redis_answers(url)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _redis_answers(url: str) -> bool:
    """True when the Redis server at `url` answers PING (an inline command, no client needed)."""
    parsed = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _alive(component: Component, settings: Settings) -> bool:
    return processes.is_alive(processes.read_pid(component.pid_path(settings)))


Printer = Callable[[str], None]


def up(settings: Settings, say: Printer = print) -> None:
    """Start every component not running yet and wait until all are healthy.

    Every port the missing components need is checked before anything starts, so a taken port
    fails with nothing started. If a start still fails half-way (a component exits, or never
    becomes healthy), what this call started is stopped again: a failed `up` leaves no port
    of ours listening.
    """
    # Every process inherits it: Uvicorn and Gunicorn size themselves on their soft limit, and
    # nginx's workers take worker_rlimit_nofile (the same number) from the master.
    capacity.raise_soft_nofile(capacity.native_nofile())
    for program in SYSTEM_PROGRAMS:
        find_program(program)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    settings.targets_dir.mkdir(parents=True, exist_ok=True)
    record_selection(settings, selection(settings))
    stack = components(settings, render_configs(settings))
    missing = [component for component in stack if not _alive(component, settings)]
    _check_ports_free(settings, missing)
    started: set[str] = set()
    try:
        for component in stack:
            if component not in missing:
                say(f"  {component.name:<17} already running")
                continue
            pid = _start(settings, component)
            started.add(component.name)
            say(f"  {component.name:<17} started (pid {pid})")
        _wait_healthy(stack, settings, say)
    except BaseException:
        # KeyboardInterrupt too: a half-started stack is never left behind.
        if started:
            say("  start-up failed; stopping what was started:")
            _stop(settings, started, say)
        raise
    _wait_targets_up(settings, say)


def _check_ports_free(settings: Settings, stack: list[Component]) -> None:
    """Raise, naming each taken port and (if `ss` can tell) its holder, if any port is taken."""
    taken = [
        f"  port {settings.ports[port_name]} ({port_name}, needed by {component.name}): "
        f"held by {processes.listener_of(settings.ports[port_name])}"
        for component in stack
        for port_name in component.port_names
        if not processes.port_free(HOST, settings.ports[port_name])
    ]
    if taken:
        raise NativeStackError(
            "ports already in use; nothing was started:\n"
            + "\n".join(taken)
            + "\nStop what holds them (`make down` if it is a stack of ours), or move this one "
            "(HTTP_PORT, PROMETHEUS_PORT, STACK_PORT_OFFSET)."
        )


def _start(settings: Settings, component: Component) -> int:
    if component.name == "redis":
        redis_dir(settings).mkdir(parents=True, exist_ok=True)
    if "PROMETHEUS_MULTIPROC_DIR" in component.env:
        Path(component.env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    pid = processes.spawn(
        component.argv,
        env=component.env,
        log_path=component.log_path(settings),
        cwd=settings.repo_root,
    )
    processes.write_pid(component.pid_path(settings), pid)
    return pid


def _wait_healthy(stack: list[Component], settings: Settings, say: Printer) -> None:
    pending = {component.name: component for component in stack}
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while pending:
        for name, component in list(pending.items()):
            if not _alive(component, settings):
                log = component.log_path(settings)
                raise NativeStackError(
                    f"{name} exited during start-up. Last lines of {log}:\n{_tail(log, 15)}"
                )
            if _healthy(component.health_url):
                say(f"  {name:<17} healthy  {component.health_url}")
                del pending[name]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(pending)
            raise NativeStackError(
                f"not healthy after {HEALTH_TIMEOUT_S:.0f} s: {names}; see `make logs`"
            )
        time.sleep(0.25)


def prometheus_targets(settings: Settings) -> list[dict]:
    url = settings.url("prometheus", "/api/v1/targets?state=active")
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]["activeTargets"]


def _wait_targets_up(settings: Settings, say: Printer) -> None:
    deadline = time.monotonic() + TARGETS_UP_TIMEOUT_S
    down: list[str] = []
    while time.monotonic() < deadline:
        try:
            targets = prometheus_targets(settings)
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            targets = []
        down = [t["labels"]["job"] for t in targets if t["health"] != "up"]
        if targets and not down:
            say(f"  prometheus      every target up ({len(targets)} targets)")
            return
        time.sleep(1)
    say(f"  WARNING: Prometheus targets not up yet: {', '.join(down) or 'none discovered'}")


# The order `down` stops things in: each stage is stopped together, stages one after another.
# nginx first, gracefully (SIGQUIT): it closes its listeners and finishes every request in flight,
# which needs the services still up. FastAPI is stopped beside it, so its open WebSockets get a
# 1012 close frame (uvicorn's shutdown) through nginx instead of holding nginx until its
# worker_shutdown_timeout; uvicorn itself finishes the HTTP requests it holds. Gunicorn goes last:
# its sync workers serve one request at a time and the rest wait in its listen backlog, which a
# stopping master drops, so it must only stop once nginx has nothing left to send it. Redis goes
# with it, once FastAPI is gone: chat sockets end with uvicorn's 1012, not a broker-lost 1013.
# The extra variants stop between the last two stages: after nginx, before their broker.
STOP_STAGES: tuple[tuple[str, ...], ...] = (
    ("prometheus", "node-exporter", "nginx-exporter", "redis-exporter"),
    ("nginx", "fastapi"),
    variants.EXTRA_NAMES,
    ("flask", "redis"),
)
STOP_SIGNALS: dict[str, signal.Signals] = {"nginx": signal.SIGQUIT}


def _stop_one(settings: Settings, name: str, say: Printer) -> None:
    pid_path = settings.pids_dir / f"{name}.pid"
    record = processes.read_pid(pid_path)
    if processes.is_alive(record):
        assert record is not None
        killed = processes.stop_group(
            record, grace_s=STOP_GRACE_S, stop_signal=STOP_SIGNALS.get(name, signal.SIGTERM)
        )
        say(f"  {name:<17} stopped" + (" (killed after grace period)" if killed else ""))
    else:
        say(f"  {name:<17} was not running")
    pid_path.unlink(missing_ok=True)


def _stop(settings: Settings, names: set[str], say: Printer) -> None:
    """Stop the named components, stage by stage (STOP_STAGES), each stage in parallel."""
    staged = {name for stage in STOP_STAGES for name in stage}
    stages = [tuple(sorted(names - staged)), *STOP_STAGES]
    for stage in stages:
        threads = [
            threading.Thread(target=_stop_one, args=(settings, name, say))
            for name in stage
            if name in names
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def down(settings: Settings, say: Printer = print) -> None:
    _stop(settings, {path.stem for path in settings.pids_dir.glob("*.pid")}, say)
    (settings.state_dir / SELECTION_FILE).unlink(missing_ok=True)
    busy = [
        f"{port} ({name})"
        for name, port in settings.ports.items()
        if name != "locust_metrics" and processes.port_in_use(HOST, port)
    ]
    if busy:
        raise NativeStackError(f"ports still in use after stopping: {', '.join(busy)}")


def nginx_command(settings: Settings, rendered: RenderedConfigs, *extra: str) -> list[str]:
    """nginx pointed at the rendered config, its run directory and the stack's error log."""
    error_log = settings.logs_dir / "nginx-error.log"
    return [
        find_program("nginx"),
        "-p",
        str(rendered.nginx_run_dir),
        "-e",
        str(error_log),
        "-c",
        str(rendered.nginx_conf),
        *extra,
    ]


def _check_nginx_config(settings: Settings, rendered: RenderedConfigs) -> None:
    result = subprocess.run(
        nginx_command(settings, rendered, "-t", "-q"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise NativeStackError(
            f"the re-rendered nginx config is refused; nothing was reloaded:\n{result.stderr}"
        )


def reload(settings: Settings, say: Printer = print) -> None:
    """Apply config and code changes without dropping traffic.

    Re-renders the configs (refusing to go on if `nginx -t` rejects them), then:
    nginx SIGHUP (new workers with the new config; old ones finish their requests, bounded by
    worker_shutdown_timeout), Gunicorn SIGHUP (re-reads gunicorn.conf.py, starts new workers that
    import the code afresh, then stops the old ones gracefully), Uvicorn SIGHUP (its supervisor
    starts a replacement for each worker and waits until it serves before stopping the old one,
    whose WebSockets are closed with 1012 "service restart"), Prometheus SIGHUP (re-reads its
    config and rules). Returns once the servers have replaced their workers and answer again.
    Worker counts and addresses are read at start: changing those needs `make down up`.
    """
    rendered = render_configs(settings)
    _check_nginx_config(settings, rendered)
    stack = {component.name: component for component in components(settings, rendered)}
    old_workers: dict[str, set[int]] = {}
    for name in ("nginx", "flask", "fastapi", "prometheus"):
        record = processes.read_pid(stack[name].pid_path(settings))
        if not processes.is_alive(record):
            raise NativeStackError(f"{name} is not running; start the stack with `make up`")
        assert record is not None
        old_workers[name] = workers(record.pid)
        processes.signal_process(record, signal.SIGHUP)
        say(f"  {name:<17} SIGHUP sent (pid {record.pid})")
    _wait_workers_replaced(settings, stack, old_workers, say)
    _wait_healthy(list(stack.values()), settings, say)


def workers(master_pid: int) -> set[int]:
    """Worker pids of a server's master (Uvicorn's multiprocessing resource tracker left out)."""
    return processes.children(master_pid, skip=("resource_tracker",))


def _wait_workers_replaced(
    settings: Settings,
    stack: dict[str, Component],
    old_workers: dict[str, set[int]],
    say: Printer,
) -> None:
    """Wait until Gunicorn's and Uvicorn's old workers are gone and as many new ones run."""
    deadline = time.monotonic() + RELOAD_TIMEOUT_S
    for name in ("flask", "fastapi"):
        record = processes.read_pid(stack[name].pid_path(settings))
        assert record is not None
        old = old_workers[name]
        while True:
            current = workers(record.pid)
            if current and not current & old and len(current) >= len(old):
                say(f"  {name:<17} workers replaced: {sorted(old)} -> {sorted(current)}")
                break
            if time.monotonic() > deadline:
                raise NativeStackError(
                    f"{name} did not replace its workers within {RELOAD_TIMEOUT_S:.0f} s "
                    f"(old {sorted(old)}, now {sorted(current)}); see `make logs`"
                )
            time.sleep(0.2)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    url: str


def status(settings: Settings) -> list[ComponentStatus]:
    rows = []
    for name in health_probes(settings):
        record = processes.read_pid(settings.pids_dir / f"{name}.pid")
        running = processes.is_alive(record)
        url = probe_url(settings, name)
        rows.append(
            ComponentStatus(
                name=name,
                pid=record.pid if record and running else None,
                running=running,
                healthy=running and _healthy(url),
                url=url,
            )
        )
    return rows


def log_files(settings: Settings) -> list[Path]:
    return sorted(settings.logs_dir.glob("*.log"))


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def tail(path: Path, lines: int) -> str:
    return _tail(path, lines)
