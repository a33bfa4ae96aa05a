"""The pinned images Docker mode runs: pulled where a registry answers, stand-ins where none does.

`python -m stackctl.images ensure` (run by `make up` in Docker mode and by `make test-docker`)
goes through every image the compose file and the project's Dockerfiles name:

1. present locally (pulled earlier, or a current stand-in): used as it is;
2. otherwise `docker pull`: a real image is always preferred;
3. otherwise, with a recipe below, a **stand-in** is built locally under the same name and tag,
   from Debian bookworm packages, and said so loudly. The base of every stand-in is a bookworm
   root file system made by `mmdebstrap` from the host's own apt sources (no mirror is named in
   this project); only that base carries the host's extra CA certificates, which builds need
   where the package index is reached through a TLS-inspecting proxy;
4. otherwise the image is unavailable: `UNAVAILABLE` says why, and Docker mode starts without
   the services that need it.

A stand-in mirrors its image's interface (entrypoint, user, the paths the compose file uses), not
its version: Debian's nginx 1.22 stands in for nginx 1.28, for example. docs/docker.md lists them.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from stackctl.settings import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
PROJECT_DOCKERFILES = (
    REPO_ROOT / "services" / "Dockerfile",
    REPO_ROOT / "loadtests" / "Dockerfile",
)
STANDIN_LABEL = "org.gateway-lab.standin"
STANDIN_BASE = "gateway-lab/standin-base:bookworm"
HOST_APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
HOST_EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
PULL_TIMEOUT_S = 120
BUILD_TIMEOUT_S = 900

# What the base holds beyond minbase: Python for the python:*-slim stand-in, wget for the
# health checks the compose file runs in the nginx, Prometheus and exporter images.
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates", "wget")
# The official python image keeps its interpreter and pip in /usr/local/bin, and the project's
# Dockerfiles name /usr/local/bin/python3.11; Debian's pip refuses system installs (PEP 668),
# which the official image's pip does not.
BASE_CUSTOMIZE = (
    'for n in python python3 python3.11; do ln -sf /usr/bin/python3.11 "$1/usr/local/bin/$n"; '
    'done; ln -sf /usr/bin/pip3 "$1/usr/local/bin/pip"; '
    'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
)
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    # pip and uv read the system bundle, which holds the host's extra CAs (see above).
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
}


@dataclass(frozen=True)
class StandIn:
    """How to stand in for one image from Debian packages, keeping the interface compose uses."""

    packages: tuple[str, ...]
    entrypoint: tuple[str, ...] = ()
    user: str = "65534:65534"
    # Shell run as root after the install: directories the real image provides, owned alike.
    prepare: str = ""

    def dockerfile(self, base: str, label: str) -> str:
        lines = [
            f"FROM {base}",
            "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            f"--no-install-recommends {' '.join(self.packages)} && rm -rf /var/lib/apt/lists/*",
        ]
        if self.prepare:
            lines.append(f"RUN {self.prepare}")
        lines.append(f"USER {self.user}")
        if self.entrypoint:
            lines.append("ENTRYPOINT " + _json_list(self.entrypoint))
            lines.append("CMD []")
        lines.append(f'LABEL {STANDIN_LABEL}="{label}"')
        return "\n".join(lines) + "\n"


def _json_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


# Keyed by repository (the image name without its tag): the tag always comes from the compose
# file or the Dockerfile, so a version is written in one place only.
STANDINS: dict[str, StandIn] = {
    "nginxinc/nginx-unprivileged": StandIn(packages=("nginx",), user="101:101"),
    "prom/prometheus": StandIn(
        packages=("prometheus",),
        entrypoint=("/usr/bin/prometheus",),
        prepare="mkdir -p /prometheus && chown 65534:65534 /prometheus",
    ),
    "prom/node-exporter": StandIn(
        packages=("prometheus-node-exporter",), entrypoint=("/usr/bin/prometheus-node-exporter",)
    ),
    "nginx/nginx-prometheus-exporter": StandIn(
        packages=("prometheus-nginx-exporter",),
        entrypoint=("/usr/bin/prometheus-nginx-exporter",),
    ),
    "redis": StandIn(
        packages=("redis-server",),
        user="999:999",
        prepare="mkdir -p /data && chown 999:999 /data",
    ),
    "oliver006/redis_exporter": StandIn(
        packages=("prometheus-redis-exporter",),
        entrypoint=("/usr/bin/prometheus-redis-exporter",),
    ),
}
# The python:*-slim-bookworm base of the project's own images is the stand-in base itself.
PYTHON_REPOSITORY = "python"

# Images that can be neither pulled here nor stood in for, and why. Docker mode starts without
# the services that need them, and says so.
UNAVAILABLE: dict[str, str] = {
    "grafana/grafana": "Grafana is not packaged by Debian; its dashboards are validated against "
    "Grafana's published schema and their queries proven against a real Prometheus instead",
    "gcr.io/cadvisor/cadvisor": "cAdvisor is not packaged by Debian bookworm",
}


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class ImageRef:
    name: str  # repository:tag

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1] if ":" in self.name else "latest"


@dataclass(frozen=True)
class Outcome:
    image: str
    source: str  # "present", "pulled", "stand-in", "unavailable"
    detail: str = ""
    seconds: float = 0.0


def compose_images(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """service -> image, for the services that pull theirs (no `build:`)."""
    services = yaml.safe_load(compose_file.read_text())["services"]
    return {
        name: spec["image"]
        for name, spec in services.items()
        if "image" in spec and "build" not in spec
    }


_FROM = re.compile(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def dockerfile_bases(dockerfiles: Iterable[Path] = PROJECT_DOCKERFILES) -> set[str]:
    """External images the project's Dockerfiles build FROM (not their own stages).

    A FROM that names a build argument (`FROM ${APP}`) picks one of the file's own stages.
    """
    bases: set[str] = set()
    for dockerfile in dockerfiles:
        stages: set[str] = set()
        for match in _FROM.finditer(dockerfile.read_text()):
            image, stage = match.group(1), match.group(2)
            if image.lower() not in stages and "$" not in image:
                bases.add(image)
            if stage:
                stages.add(stage.lower())
    return bases


def required_images() -> list[str]:
    return sorted(set(compose_images().values()) | dockerfile_bases())


def _docker(*args: str, timeout: float | None = None, input_text: str | None = None):
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
    )


def image_label(image: str) -> str | None:
    """The stand-in label of a local image ("" for a real one), None when it is absent."""
    label_of = f'{{{{index .Config.Labels "{STANDIN_LABEL}"}}}}'
    probe = _docker("image", "inspect", "--format", label_of, image)
    if probe.returncode != 0:
        return None
    value = probe.stdout.strip()
    return "" if value in ("", "<no value>") else value


def _recipe_digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def host_apt_sources() -> list[Path]:
    files = [HOST_APT_SOURCES[0]] if HOST_APT_SOURCES[0].is_file() else []
    files += sorted(
        path
        for path in HOST_APT_SOURCES[1].glob("*")
        if path.suffix in (".list", ".sources") and path.is_file()
    )
    if not files:
        raise ImageError(
            "no apt sources on this host (/etc/apt/sources.list[.d]): cannot bootstrap"
        )
    return files


def base_recipe_digest() -> str:
    sources = "\n".join(path.read_text() for path in host_apt_sources())
    return _recipe_digest(" ".join(BASE_PACKAGES), *BASE_CUSTOMIZE, repr(BASE_ENV), sources)


def build_base(log: Path) -> None:
    """A bookworm root file system from the host's apt sources, imported as STANDIN_BASE."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise ImageError("mmdebstrap is missing: run `make docker-deps`")
    digest = base_recipe_digest()
    hooks = [
        f'mkdir -p "$1{HOST_EXTRA_CA_DIR}"',
        f"copy-in {HOST_EXTRA_CA_DIR}/. {HOST_EXTRA_CA_DIR}" if HOST_EXTRA_CA_DIR.is_dir() else "",
        'chroot "$1" update-ca-certificates',
        *BASE_CUSTOMIZE,
    ]
    with tempfile.TemporaryDirectory() as scratch:
        rootfs = Path(scratch) / "rootfs.tar"
        argv = [
            mmdebstrap,
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            *(f"--customize-hook={hook}" for hook in hooks if hook),
            "--format=tar",
            "bookworm",
            str(rootfs),
            *map(str, host_apt_sources()),
        ]
        _logged(argv, log)
        changes = [f"ENV {name}={value}" for name, value in BASE_ENV.items()]
        changes += ['CMD ["python3"]', f'LABEL {STANDIN_LABEL}="base-{digest}"']
        options = [f"--change={change}" for change in changes]
        _logged(["docker", "import", *options, str(rootfs), STANDIN_BASE], log)


def _logged(argv: list[str], log: Path, input_text: str | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as stream:
        stream.write(f"\n$ {' '.join(argv)}\n")
        stream.flush()
        step = subprocess.run(
            argv,
            stdout=stream,
            stderr=subprocess.STDOUT,
            text=True,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            timeout=BUILD_TIMEOUT_S,
        )
    if step.returncode != 0:
        raise ImageError(f"`{' '.join(argv[:3])} ...` failed (exit {step.returncode}); see {log}")


def ensure_base(log: Path) -> str:
    """Build the stand-in base unless a current one exists; returns its label."""
    wanted = f"base-{base_recipe_digest()}"
    if image_label(STANDIN_BASE) != wanted:
        build_base(log)
    return wanted


def _pull(image: str) -> tuple[bool, str]:
    """Try the registry; (pulled, why not)."""
    try:
        pull = _docker("pull", "--quiet", image, timeout=PULL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"no answer within {PULL_TIMEOUT_S} s"
    return pull.returncode == 0, (pull.stderr.strip().splitlines() or ["no answer"])[-1]


def _stand_in(image: str, label: str | None, log: Path) -> None:
    """Make `image` a current stand-in (the base itself, or a build on it)."""
    repository = ImageRef(image).repository
    base_label = ensure_base(log)
    if repository == PYTHON_REPOSITORY:
        if label != base_label:
            tag = _docker("tag", STANDIN_BASE, image)
            if tag.returncode != 0:
                raise ImageError(f"docker tag {STANDIN_BASE} {image}: {tag.stderr.strip()}")
        return
    recipe = STANDINS[repository]
    wanted = _recipe_digest(base_label, repr(recipe))
    if label != wanted:
        _logged(["docker", "build", "-t", image, "-"], log, recipe.dockerfile(STANDIN_BASE, wanted))


def ensure_image(image: str, log: Path) -> Outcome:
    """A real image when there is one (present, or pulled now), else a stand-in, else why not."""
    started = time.monotonic()
    label = image_label(image)
    if label == "":
        return Outcome(image, "present", "a real image")
    # Tried even where a stand-in exists: once a registry answers, the real image replaces it.
    pulled, reason = _pull(image)
    if pulled:
        return Outcome(image, "pulled", "", time.monotonic() - started)
    repository = ImageRef(image).repository
    if repository in STANDINS or repository == PYTHON_REPOSITORY:
        _stand_in(image, label, log)
        return Outcome(image, "stand-in", reason, time.monotonic() - started)
    if repository in UNAVAILABLE:
        return Outcome(image, "unavailable", UNAVAILABLE[repository])
    raise ImageError(
        f"{image} cannot be pulled ({reason}) and has neither a stand-in recipe nor a reason "
        "in stackctl/images.py: add one of the two"
    )


def ensure_all(log: Path, images: Iterable[str] | None = None) -> list[Outcome]:
    outcomes = []
    for image in images if images is not None else required_images():
        print(f"  image {image} ...", end="", flush=True)
        outcome = ensure_image(image, log)
        print(f" {outcome.source}" + (f" ({outcome.seconds:.0f} s)" if outcome.seconds else ""))
        outcomes.append(outcome)
    return outcomes


def report(outcomes: list[Outcome]) -> str:
    """A loud summary of every image that is not the real, pinned one."""
    standins = [o for o in outcomes if o.source == "stand-in"]
    missing = [o for o in outcomes if o.source == "unavailable"]
    if not standins and not missing:
        return ""
    width = 78
    lines = ["!" * width]
    if standins:
        lines.append("STAND-IN IMAGES: these pinned images could not be pulled, so local stand-ins")
        lines.append(
            "built from Debian bookworm packages run under the same names (see docs/docker.md):"
        )
        lines += [f"  {o.image}" for o in standins]
    if missing:
        lines.append("UNAVAILABLE: no pull and no stand-in; their services are not started:")
        lines += [f"  {o.image}: {o.detail}" for o in missing]
    lines.append("!" * width)
    return "\n".join(lines)


def unavailable_services(outcomes: list[Outcome]) -> list[str]:
    missing = {o.image for o in outcomes if o.source == "unavailable"}
    return sorted(service for service, image in compose_images().items() if image in missing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackctl.images", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("ensure", "list"))
    parser.add_argument("--log", type=Path, default=REPO_ROOT / ".run" / "images.log")
    args = parser.parse_args(argv)
    if args.command == "list":
        for image in required_images():
            ref = ImageRef(image)
            if ref.repository == PYTHON_REPOSITORY:
                kind = "stand-in: the bookworm base"
            elif ref.repository in STANDINS:
                kind = "stand-in: " + " ".join(STANDINS[ref.repository].packages)
            else:
                kind = "unavailable: " + UNAVAILABLE.get(ref.repository, "no recipe")
            print(f"{image}\t{kind}")
        return 0
    try:
        outcomes = ensure_all(args.log)
    except (ImageError, subprocess.TimeoutExpired) as error:
        print(f"stackctl.images: {error}", file=sys.stderr)
        return 1
    summary = report(outcomes)
    if summary:
        print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
