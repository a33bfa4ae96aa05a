"""Static checks of docker-compose.yml (no Docker engine needed).

The file is validated against the Compose Specification's JSON Schema (a copy in
tests/static/schemas), and by `docker compose config -q` where a Compose CLI answers, then
checked for the behaviour the stack relies on: pinned images, health checks and ordered start-up,
nothing internal published, hardened and identically sized app services, no secret with a default,
`.env.example` in step with the file, a `config` service that fills every placeholder of
both config templates with addresses that exist in this compose project, and one service per
server variant that says what the registry (gateway_common/variants.py) says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = ROOT / "tests" / "static" / "schemas" / "compose-spec.json"
NGINX_TEMPLATE = ROOT / "nginx" / "templates" / "nginx.conf.template"
PROMETHEUS_TEMPLATE = ROOT / "monitoring" / "prometheus" / "prometheus.yml.template"
REDIS_TEMPLATE = ROOT / "services" / "redis" / "redis.conf.template"
TEMPLATES = (NGINX_TEMPLATE, PROMETHEUS_TEMPLATE, REDIS_TEMPLATE)

try:
    from gateway_common import variants
    from stackctl import capacity, docker, render, routes, tls
except ImportError:  # not installed into the environment: use the source tree
    sys.path.insert(0, str(ROOT / "services"))
    from gateway_common import variants
    from stackctl import capacity, docker, render, routes, tls

pytestmark = pytest.mark.static

# Every server variant is a compose service of its name: the default two and the extra ones.
APP_SERVICES = tuple(variant.name for variant in variants.VARIANTS)
DEFAULT_SERVICES = variants.DEFAULT_NAMES
# The Dockerfile of every Python service; its build argument APP names the framework.
SERVICES_DOCKERFILE = "services/Dockerfile"
# Long-running services that cannot have a health check, and why.
NO_HEALTHCHECK = {
    "nginx-exporter": "a single static binary in an empty image: no shell, no wget",
    "redis-exporter": "a single static binary in an empty image: no shell, no wget",
    "locust-worker": "serves nothing; the master lists the workers it sees",
}
# Services allowed to run as root, and why.
ROOT_ALLOWED = {
    "cadvisor": "reads every container's cgroups and Docker's state on the host (privileged)",
}
# The only published ports: container port -> where it may be bound on the host.
PUBLISHED = {
    "nginx": {8080: {None, "0.0.0.0"}, 8443: {None, "0.0.0.0"}},
    "prometheus": {9090: {"127.0.0.1"}},
    "grafana": {3000: {"127.0.0.1"}},
    "locust-master": {8089: {"127.0.0.1"}},
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)|CREDENTIAL")
# Names that look secret but hold a file's path: the TLS key itself never enters the compose
# file or .env, only where it lives (a bind mount's source).
NOT_SECRETS = {"TLS_KEY", "NGINX_TLS_KEY"}
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+(?:-[a-z0-9]+(?:[.-][a-z0-9]+)*)?$")
LOCAL_IMAGE = re.compile(r"^gateway-lab/[a-z0-9-]+:local$")

# Compose interpolation: $$ (a literal $), ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt} and $NAME.
INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


# --------------------------------------------------------------------------- helpers


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def strings(node: Any) -> Iterator[str]:
    """Every string value in a loaded YAML document (keys are never interpolated)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def references(text: str) -> Iterator[re.Match[str]]:
    for match in INTERPOLATION.finditer(text):
        if not match.group("escaped"):
            yield match


def variable(match: re.Match[str]) -> str:
    return match.group("braced") or match.group("named")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation, enough for this file (no nested defaults)."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name, op, arg = variable(match), match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":-", "-"):
            return arg if value is None or (op == ":-" and value == "") else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise KeyError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if value not in (None, "") or (op == "+" and value is not None) else ""
        return value or ""

    return INTERPOLATION.sub(replace, text)


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def parse_port(entry: Any) -> tuple[str | None, int]:
    """(host_ip, container port) of a `ports` entry, short or long syntax."""
    if isinstance(entry, dict):
        return entry.get("host_ip"), int(str(entry["target"]).split("/")[0])
    parts = str(entry).split("/")[0]
    # Split on ':' outside ${...}.
    fields = re.split(r":(?![^{]*\})", parts)
    container = int(fields[-1])
    host_ip = fields[0] if len(fields) == 3 else None
    return host_ip, container


def volume_entries(service: dict[str, Any]) -> list[dict[str, Any]]:
    """`volumes` of a service as long-syntax dictionaries."""
    entries = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            entries.append(entry)
            continue
        # A bind mount's path may come from the environment (its default, here).
        source, target, *options = interpolate(entry, {}).split(":")
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        entries.append(
            {
                "type": kind,
                "source": source,
                "target": target,
                "read_only": "ro" in ",".join(options).split(","),
            }
        )
    return entries


def tmpfs_targets(service: dict[str, Any]) -> set[str]:
    tmpfs = service.get("tmpfs", [])
    tmpfs = [tmpfs] if isinstance(tmpfs, str) else tmpfs
    targets = {entry.split(":")[0] for entry in tmpfs}
    targets |= {v["target"] for v in volume_entries(service) if v["type"] == "tmpfs"}
    return targets


def compose_subnet() -> str:
    return load_compose()["networks"]["gateway"]["ipam"]["config"][0]["subnet"]


def is_long_running(service: dict[str, Any]) -> bool:
    return service.get("restart", "no") != "no"


# --------------------------------------------------------------------------- validity


def test_compose_file_is_valid(compose: dict[str, Any]) -> None:
    import json

    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30
    )
    return [docker, "compose"] if probe.returncode == 0 else None


def run_compose_config() -> None:
    cli = compose_cli()
    assert cli is not None
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "not-a-real-password"}
    result = subprocess.run(
        [*cli, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_compose_cli_accepts_the_file() -> None:
    if compose_cli() is None:
        pytest.skip("optional tool missing: `docker compose` (the schema check still runs)")
    run_compose_config()


def test_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert compose.get("name") == "gateway-lab"


# --------------------------------------------------------------------------- images


def test_every_image_is_pinned_to_an_exact_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name}: no image name"
        if "build" in service:
            assert LOCAL_IMAGE.match(image), f"{name}: a built image is named {image!r}"
            continue
        reference, _, digest = image.partition("@")
        assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), name
        repository, sep, tag = reference.rpartition(":")
        assert sep and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image} floats"
        assert PINNED_TAG.match(tag), f"{name}: {image} is not an exact major.minor.patch tag"


def test_services_built_alike_share_one_image_name(services: dict[str, dict[str, Any]]) -> None:
    """One image per (Dockerfile, build arguments); a Python service's is named after its APP."""
    images: dict[tuple[str, str], set[str]] = {}
    for name, service in services.items():
        if "build" not in service:
            continue
        build = service["build"]
        args = build.get("args", {})
        images.setdefault((build["dockerfile"], repr(sorted(args.items()))), set()).add(
            service["image"]
        )
        if build["dockerfile"] == SERVICES_DOCKERFILE:
            assert set(args) == {"APP"}, name
            assert args["APP"] in variants.FRAMEWORK_ENV_PREFIX, name
            assert service["image"] == f"gateway-lab/{args['APP']}:local", name
    assert all(len(names) == 1 for names in images.values()), images


def test_build_uses_the_repository_root_and_an_existing_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    built = [name for name, service in services.items() if "build" in service]
    assert {"config", *APP_SERVICES, "locust-master", "locust-worker"} <= set(built)
    for name in built:
        build = services[name]["build"]
        assert build["context"] == ".", name
        dockerfile = ROOT / build["dockerfile"]
        assert dockerfile.is_file(), dockerfile


# --------------------------------------------------------------------------- start-up


def test_long_running_services_have_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    assert set(NO_HEALTHCHECK) <= set(services), "stale exemption"
    for name, service in services.items():
        if not is_long_running(service) or name in NO_HEALTHCHECK:
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for field in ("interval", "timeout", "retries"):
            assert field in check, f"{name}: healthcheck has no {field}"


def test_restart_policies(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        expected = "no" if name == "config" else "unless-stopped"
        assert service.get("restart") == expected, name


def test_depends_on_waits_for_the_right_condition(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            condition = spec.get("condition")
            target = services[dependency]
            if condition == "service_completed_successfully":
                assert not is_long_running(target), f"{name}: {dependency} never completes"
            elif condition == "service_healthy":
                assert "healthcheck" in target, f"{name}: {dependency} has no healthcheck"
            else:
                assert condition == "service_started", f"{name}: {dependency}: {condition}"
    nginx = services["nginx"]["depends_on"]
    assert nginx["config"]["condition"] == "service_completed_successfully"
    assert nginx["flask"]["condition"] == "service_healthy"
    assert nginx["fastapi"]["condition"] == "service_healthy"
    prometheus = services["prometheus"]["depends_on"]
    assert prometheus["config"]["condition"] == "service_completed_successfully"


def test_loadtest_services_are_opt_in_and_scalable(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in variants.EXTRA_NAMES:
            continue  # profiles of their own: test_variant_services_follow_the_registry
        expected = ["loadtest"] if name.startswith("locust-") else None
        assert service.get("profiles") == expected, name
    worker = services["locust-worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale needs both
    assert "--master-host" in worker["command"]
    assert worker["command"][worker["command"].index("--master-host") + 1] == "locust-master"
    master = services["locust-master"]["command"]
    assert "--master" in master
    assert master[master.index("--host") + 1] == "http://nginx:8080"
    # loadtests/exporter.py announces hostname:port of LOCUST_METRICS_BIND to Prometheus.
    env = environment(services["locust-master"])
    assert env["LOCUST_METRICS_BIND"] == "0.0.0.0:9646"
    assert services["locust-master"]["hostname"] == "locust-master"


# --------------------------------------------------------------------------- exposure


def test_only_nginx_is_published_on_every_interface(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        published = [parse_port(entry) for entry in service.get("ports", [])]
        allowed = PUBLISHED.get(name, {})
        for host_ip, container in published:
            assert container in allowed, f"{name}: container port {container} is published"
            host_ip = interpolate(host_ip, {}) if host_ip else None
            assert host_ip in allowed[container], f"{name}:{container} bound on {host_ip}"
        assert "expose" not in service, f"{name}: `expose` is documentation only; remove it"
    for name in APP_SERVICES + ("nginx-exporter", "node-exporter", "cadvisor", "config"):
        assert "ports" not in services[name], name
    assert services["nginx"]["ports"] == ["${HTTP_PORT:-8080}:8080", "${HTTPS_PORT:-8443}:8443"]


def test_services_share_the_gateway_network(compose: dict[str, Any]) -> None:
    subnet = compose["networks"]["gateway"]["ipam"]["config"][0]["subnet"]
    assert interpolate(subnet, {}) == "172.28.0.0/24"
    for name, service in compose["services"].items():
        assert "network_mode" not in service, name
        assert service.get("networks") == ["gateway"], name
    for name in APP_SERVICES:
        # Trust X-Forwarded-* from the compose network only (that is where nginx is).
        assert environment(compose["services"][name])["FORWARDED_ALLOW_IPS"] == subnet


# --------------------------------------------------------------------------- hardening


def test_app_services_are_hardened_and_identically_sized(
    services: dict[str, dict[str, Any]],
) -> None:
    limits = set()
    for name in APP_SERVICES:
        service = services[name]
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("init") is True, name
        assert service.get("stop_grace_period") == "35s", name
        assert "cpus" in service and "mem_limit" in service, name
        limits.add((service["cpus"], service["mem_limit"], service.get("pids_limit")))
        env = environment(service)
        writable = tmpfs_targets(service)
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            assert env["PROMETHEUS_MULTIPROC_DIR"] in writable, f"{name}: metrics not on tmpfs"
        assert "/tmp" in writable, f"{name}: no writable /tmp on a read-only root"
    # The chat bus (and /poll) is Redis pub/sub: a broker address, no shared socket directory.
    for name in APP_SERVICES:
        env = environment(services[name])
        assert env.get("REDIS_URL", "").startswith("redis://"), name
        assert "CHAT_BUS_DIR" not in env, name
        assert "redis" in services[name]["depends_on"], name
    assert len(limits) == 1, f"the app services differ: {limits}"
    assert limits.pop()[:2] == ("${SERVICE_CPUS:-1.0}", "${SERVICE_MEMORY:-1g}")


def test_services_run_unprivileged(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ROOT_ALLOWED:
            assert "user" not in service or service["user"].split(":")[0] in ("0", "root")
            continue
        user = service.get("user")
        assert user, f"{name}: set `user:` (non-root) explicitly"
        assert user.split(":")[0] not in ("0", "root"), f"{name} runs as root"
        assert not service.get("privileged"), f"{name} is privileged"
        assert service.get("cap_drop") == ["ALL"], f"{name}: capabilities not dropped"
        assert "no-new-privileges:true" in service.get("security_opt", []), name


def test_no_secret_has_a_default(compose: dict[str, Any]) -> None:
    secrets = set()
    for text in strings(compose):
        for match in references(text):
            if SECRET_NAME.search(variable(match)) and variable(match) not in NOT_SECRETS:
                secrets.add(variable(match))
                assert match.group("op") in (":?", "?"), f"{match.group(0)} has a default"
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and key not in NOT_SECRETS:
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", value), f"{name}: {key}={value}"
    assert "GRAFANA_ADMIN_PASSWORD" in secrets
    example = env_example()
    for name in secrets:
        assert example[name] == "", f".env.example gives {name} a value"


def test_grafana_is_read_only_for_anonymous_visitors(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["grafana"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    mounts = {v["target"]: v for v in volume_entries(services["grafana"])}
    target = max((t for t in mounts if home.startswith(t + "/")), key=len)  # innermost mount
    host_file = ROOT / mounts[target]["source"] / home.removeprefix(target + "/")
    assert host_file.is_file(), f"home dashboard {home}: no {host_file}"
    for target in ("/etc/grafana/provisioning", "/var/lib/grafana/dashboards"):
        assert mounts[target]["read_only"], target


# --------------------------------------------------------------------------- .env.example


def test_env_example_documents_exactly_the_interpolated_variables(
    compose: dict[str, Any],
) -> None:
    used: dict[str, set[str | None]] = {}
    for text in strings(compose):
        for match in references(text):
            op = match.group("op")
            default = match.group("arg") if op in (":-", "-") else None
            used.setdefault(variable(match), set()).add(default)
    example = env_example()
    assert set(used) == set(example), (
        f"undocumented: {sorted(set(used) - set(example))}; "
        f"unused: {sorted(set(example) - set(used))}"
    )
    for name, defaults in used.items():
        assert len(defaults) == 1, f"{name} has different defaults: {defaults}"
        (default,) = defaults
        if default is not None:
            assert example[name] == default, (
                f"{name}: .env.example {example[name]!r} != {default!r}"
            )

    lines = ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith("#"):
            name = line.split("=")[0]
            assert _commented_block(lines, index), f".env.example: {name} has no comment"


def _commented_block(lines: list[str], index: int) -> bool:
    """A variable may share the comment of the variables right above it."""
    while index > 0 and lines[index - 1] and not lines[index - 1].startswith("#"):
        index -= 1
    return index > 0 and lines[index - 1].startswith("#")


def test_dot_env_is_git_ignored() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored


# --------------------------------------------------------------------------- config templates


CAPACITY_INPUTS = {"CONTAINER_NOFILE", "SERVICE_MEMORY"}
# Read by stackctl.routes (the server variants' routes and targets), not by a template.
VARIANT_INPUTS = {"VARIANTS", "WSGI_WORKERS", "WSGI_THREADS", "WSGI_WORKER_CLASS", "ASGI_WORKERS"}


def derived_by_config(config: dict[str, Any]) -> set[str]:
    """Placeholders `render --container-limits` fills (stackctl.capacity, stackctl.routes)."""
    if "--container-limits" not in config["command"]:
        return set()
    return set(capacity.edge_limits(16384, 2).nginx_values()) | set(routes.docker_values({}).keys())


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_config_service_fills_every_template_placeholder(
    services: dict[str, dict[str, Any]], template: Path
) -> None:
    needed = render.placeholders(template.read_text())
    provided = set(environment(services["config"])) | derived_by_config(services["config"])
    assert needed <= provided, f"config service lacks {sorted(needed - provided)}"


def test_config_service_sets_nothing_the_templates_do_not_use(
    services: dict[str, dict[str, Any]],
) -> None:
    used = set().union(*(render.placeholders(template.read_text()) for template in TEMPLATES))
    # The inputs of the derived limits are read by stackctl.capacity, not by a template.
    extra = set(environment(services["config"])) - used - CAPACITY_INPUTS - VARIANT_INPUTS
    assert not extra, f"config service sets unused {sorted(extra)}"


def test_config_service_renders_from_read_only_templates_into_the_shared_volume(
    services: dict[str, dict[str, Any]],
) -> None:
    config = services["config"]
    command = [part for part in config["command"] if part != "--container-limits"]
    assert command[:3] == ["python", "-m", "stackctl.render"]
    pairs = list(zip(command[3::2], command[4::2], strict=True))
    mounts = {v["target"]: v for v in volume_entries(config)}
    sources = {
        "/templates/nginx": "./nginx/templates",
        "/templates/prometheus": "./monitoring/prometheus",
        "/templates/redis": "./services/redis",
    }
    for target, source in sources.items():
        assert mounts[target]["source"] == source and mounts[target]["read_only"], target
    assert mounts["/rendered"]["source"] == "rendered-config"
    assert not mounts["/rendered"]["read_only"]
    for template, output in pairs:
        directory = str(Path(template).parent)
        host_file = ROOT / sources[directory].removeprefix("./") / Path(template).name
        assert host_file in TEMPLATES, template
        assert output.startswith("/rendered/"), output
    assert [output for _, output in pairs] == [
        "/rendered/nginx/nginx.conf",
        "/rendered/prometheus/prometheus.yml",
        "/rendered/redis/redis.conf",
    ]
    assert environment(config)["NGINX_USER_DIRECTIVE"] == ""


def config_values(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """What the config service's renderer sees: compose fills ${GATEWAY_SUBNET:-...} and the
    like, then `--container-limits` adds the limits stackctl.capacity derives from them."""
    values = {
        name: interpolate(value, {}) for name, value in environment(services["config"]).items()
    }
    if "--container-limits" in services["config"]["command"]:
        values |= capacity.container_limits(values).nginx_values()
        values |= routes.docker_values(values)
    return values


def rendered(services: dict[str, dict[str, Any]], template: Path) -> str:
    return render.render_text(template.read_text(), config_values(services), source=str(template))


def test_rendered_nginx_config_matches_the_compose_services(
    services: dict[str, dict[str, Any]],
) -> None:
    text = rendered(services, NGINX_TEMPLATE)
    env = environment(services["config"])
    nginx = services["nginx"]
    upstreams = re.findall(r"^\s*server\s+([a-z0-9-]+):(\d+)\b", text, re.MULTILINE)
    assert {host for host, _ in upstreams} == set(DEFAULT_SERVICES)
    for host, port in upstreams:
        assert port == "8000", host
        bind = f"{variants.get(host).env_prefix}_BIND"
        assert environment(services[host])[bind] == f"0.0.0.0:{port}"
    listens = set(re.findall(r"^\s*listen\s+([^\s;]+)", text, re.MULTILINE))
    assert listens == {"8080", "8443", "8081"}
    assert [parse_port(p)[1] for p in nginx["ports"]] == [
        int(env["NGINX_PUBLIC_LISTEN"]),
        int(env["NGINX_TLS_LISTEN"]),
    ]
    mounts = {v["target"]: v for v in volume_entries(nginx)}
    for name in ("NGINX_TLS_CERT", "NGINX_TLS_KEY"):
        assert mounts[env[name]]["read_only"], name
    status = env["NGINX_STATUS_LISTEN"]
    assert f"http://127.0.0.1:{status}/healthz" in nginx["healthcheck"]["test"]
    exporter = services["nginx-exporter"]["command"]
    assert f"--nginx.scrape-uri=http://nginx:{status}/stub_status" in exporter
    assert env["NGINX_RUN_DIR"] in tmpfs_targets(nginx)
    mounts = {v["target"]: v for v in volume_entries(nginx)}
    assert mounts[env["NGINX_HTML_DIR"]]["source"] == "./nginx/html"
    assert mounts["/rendered"]["source"] == "rendered-config" and mounts["/rendered"]["read_only"]
    assert nginx["command"][:5] == ["nginx", "-e", "stderr", "-c", "/rendered/nginx/nginx.conf"]
    assert not re.search(r"^\s*user\s", text, re.MULTILINE), "the image runs as uid 101"
    # stub_status answers the exporter, which reaches nginx from the compose network.
    subnet = interpolate(compose_subnet(), {})
    assert f"allow {subnet};" in text


def test_rendered_prometheus_config_scrapes_the_compose_services(
    services: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load(rendered(services, PROMETHEUS_TEMPLATE))
    prometheus = services["prometheus"]
    mounts = {v["target"]: v for v in volume_entries(prometheus)}
    assert "--config.file=/rendered/prometheus/prometheus.yml" in prometheus["command"]
    assert mounts["/rendered"]["source"] == "rendered-config"
    for pattern in config["rule_files"]:
        directory = str(Path(pattern).parent)
        assert mounts[directory]["source"] == "./monitoring/prometheus/rules", pattern
        assert mounts[directory]["read_only"]
    targets = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += static["targets"]
        for file_sd in job.get("file_sd_configs", []):
            for pattern in file_sd["files"]:
                directory = str(Path(pattern).parent)
                assert mounts[directory]["source"] == "prometheus-targets", pattern
                locust = {v["target"]: v for v in volume_entries(services["locust-master"])}
                assert locust[directory]["source"] == "prometheus-targets"
    ports = {"flask": "9100", "fastapi": "9100", "nginx-exporter": "9113"}
    ports |= {"node-exporter": "9100", "cadvisor": "8080", "redis-exporter": "9121"}
    for target in targets:
        host, _, port = target.rpartition(":")
        if host == "localhost":
            assert port == "9090"
            continue
        assert host in services, f"prometheus scrapes {target}: no such service"
        assert ports[host] == port, target
    for name in APP_SERVICES:
        bind = environment(services[name])[f"{variants.get(name).env_prefix}_METRICS_BIND"]
        assert bind == "0.0.0.0:9100", name


# --------------------------------------------------------------------------- server variants

# The two ports every app container listens on (gateway_common.variants).
CONTAINER_BIND = f"0.0.0.0:{variants.CONTAINER_APP_PORT}"
CONTAINER_METRICS_BIND = f"0.0.0.0:{variants.CONTAINER_METRICS_PORT}"
# What every app service sets besides its registry environment (natively: stackctl.native).
SHARED_APP_ENV = {
    "PROMETHEUS_MULTIPROC_DIR": "/run/gateway/metrics",
    "REDIS_URL": "redis://redis:6379/0",
    "FORWARDED_ALLOW_IPS": "${GATEWAY_SUBNET:-172.28.0.0/24}",
    "BACKEND_KEEPALIVE_S": "75",
    "LOG_LEVEL": "${LOG_LEVEL:-info}",
}
# Framework settings a service may set beyond the registry's: Flask's trusted proxy count.
FRAMEWORK_EXTRAS = {"WSGI_PROXY_COUNT"}


def active_services(services: dict[str, dict[str, Any]], profiles: list[str]) -> set[str]:
    """The services compose starts with these profiles (COMPOSE_PROFILES), no name given."""
    return {
        name
        for name, service in services.items()
        if not service.get("profiles") or set(service["profiles"]) & set(profiles)
    }


def test_there_is_one_service_per_variant(services: dict[str, dict[str, Any]]) -> None:
    in_matrix = {
        name
        for name, service in services.items()
        if docker.ALL_VARIANTS_PROFILE in service.get("profiles", [])
    }
    assert in_matrix == set(variants.EXTRA_NAMES)
    assert set(DEFAULT_SERVICES) <= set(services)


@pytest.mark.parametrize("variant", variants.VARIANTS, ids=lambda v: v.name)
def test_variant_services_follow_the_registry(
    services: dict[str, dict[str, Any]], variant: variants.Variant
) -> None:
    service = services[variant.name]
    assert service["command"] == ["python", *variant.command]
    assert service["build"]["args"]["APP"] == variant.framework
    expected_profiles = None if variant.default else [docker.ALL_VARIANTS_PROFILE, variant.name]
    assert service.get("profiles") == expected_profiles
    # The default two take their sizes from the environment; the registry's are the defaults.
    env = {name: interpolate(value, {}) for name, value in environment(service).items()}
    registry = variant.server_env(CONTAINER_BIND, CONTAINER_METRICS_BIND)
    differing = {
        key: (env.get(key), value) for key, value in registry.items() if env.get(key) != value
    }
    assert not differing, f"{variant.name}: compose vs registry {differing}"
    framework_keys = {
        key for key in env if key.split("_")[0] in variants.FRAMEWORK_ENV_PREFIX.values()
    }
    unknown = framework_keys - set(registry) - FRAMEWORK_EXTRAS
    assert not unknown, f"{variant.name}: settings the registry does not give: {unknown}"
    raw = environment(service)
    for key, value in SHARED_APP_ENV.items():
        assert raw.get(key) == value, f"{variant.name}: {key}={raw.get(key)}"


@pytest.mark.parametrize(
    "selection", [variants.ALL, *variants.EXTRA_NAMES, "flask-gevent,tornado", ""]
)
def test_the_profiles_stackctl_sets_start_exactly_the_selected_variants(
    services: dict[str, dict[str, Any]], selection: str
) -> None:
    chosen = variants.parse_selection(selection)
    started = active_services(services, docker.variant_profiles(chosen))
    assert started & set(APP_SERVICES) == {variant.name for variant in chosen}


def test_every_selected_variant_is_routed_and_scraped_by_its_service_name(
    services: dict[str, dict[str, Any]],
) -> None:
    """The config service's render with VARIANTS=all names compose services and their ports."""
    values = config_values(services) | routes.docker_values({"VARIANTS": variants.ALL})
    nginx = render.render_text(NGINX_TEMPLATE.read_text(), values)
    backends = re.findall(r"set \$variant_backend ([a-z0-9-]+):(\d+);", nginx)
    assert {host for host, _ in backends} == set(variants.EXTRA_NAMES)
    for host, port in backends:
        bind = environment(services[host])[f"{variants.get(host).env_prefix}_BIND"]
        assert bind == f"0.0.0.0:{port}", host
    prometheus = yaml.safe_load(render.render_text(PROMETHEUS_TEMPLATE.read_text(), values))
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "variants"]
    (discovery,) = job["dns_sd_configs"]
    assert set(discovery["names"]) == set(variants.EXTRA_NAMES)
    for name in discovery["names"]:
        bind = environment(services[name])[f"{variants.get(name).env_prefix}_METRICS_BIND"]
        assert bind == f"0.0.0.0:{discovery['port']}", name


# --------------------------------------------------------------------------- volumes


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    used = set()
    for name, service in compose["services"].items():
        for mount in volume_entries(service):
            if mount["type"] == "volume":
                assert mount["source"] in declared, f"{name}: undeclared {mount['source']}"
                used.add(mount["source"])
            elif mount["type"] == "bind" and mount["source"].startswith("./"):
                assert mount["read_only"], f"{name}: {mount['source']} is mounted writable"
    assert used == declared, f"unused volumes: {declared - used}"


# --------------------------------------------------------------------------- real tools


def find_tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def test_docker_render_passes_nginx_t(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """The Docker-mode nginx.conf, with the two upstream hosts swapped for loopback addresses
    (nginx -t resolves them, and flask/fastapi only resolve inside the compose network)."""
    nginx = find_tool("nginx")
    assert nginx, "no nginx binary: `make setup` installs it"
    values = config_values(services)
    values |= {"WSGI_UPSTREAM": "127.0.0.1:8000", "ASGI_UPSTREAM": "127.0.0.2:8000"}
    # A throwaway certificate where the container mounts the TLS pair.
    pair = tls.ensure_certificate(tmp_path, {})
    values |= {"NGINX_TLS_CERT": str(pair.cert), "NGINX_TLS_KEY": str(pair.key)}
    values["NGINX_RUN_DIR"] = str(tmp_path)  # /tmp/nginx is a tmpfs in the container
    conf = tmp_path / "nginx.conf"
    conf.write_text(render.render_text(NGINX_TEMPLATE.read_text(), values))
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", "/dev/stderr", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_docker_render_passes_promtool(services: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """The Docker-mode prometheus.yml, with the rules directory pointed at the repository's."""
    promtool = find_tool("promtool")
    assert promtool, "no promtool binary: `make setup` installs it"
    values = {k: interpolate(v, {}) for k, v in environment(services["config"]).items()}
    values |= routes.docker_values({"VARIANTS": "all"})
    values["PROMETHEUS_RULES_DIR"] = str(ROOT / "monitoring" / "prometheus" / "rules")
    values["PROMETHEUS_TARGETS_DIR"] = str(tmp_path)
    config = tmp_path / "prometheus.yml"
    config.write_text(render.render_text(PROMETHEUS_TEMPLATE.read_text(), values))
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
