"""Docker mode for real (`make test-docker`): engine, images, the compose stack and its contract.

The session starts a Docker engine only where none answers (and stops only that one), makes the
pinned images exist (pulled, or loudly reported stand-ins), then runs `make up` with
`STACK=docker` as a user does, under its own compose project, ports and subnet, so a demo stack
on the same machine is never touched. The teardown runs `make down` and fails the run if any
container, network or anonymous volume of the project is left behind.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from stackctl import engine, images
from tests.docker.harness import (
    DOCKER_TEST_ENV,
    DOWN_TIMEOUT_S,
    FIGURES,
    PROJECT,
    DockerStack,
    figure,
)


def _leftovers() -> dict[str, list[str]]:
    label = f"label=com.docker.compose.project={PROJECT}"
    found = {}
    for kind in ("container", "network"):
        argv = ["docker", kind, "ls", "--quiet", "--filter", label]
        if kind == "container":
            argv.insert(3, "--all")
        listed = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout.split()
        found[kind] = listed
    return found


def _anonymous_volumes() -> set[str]:
    """Volumes no one named: Docker gives them a 64-hex-digit name."""
    listed = subprocess.run(
        ["docker", "volume", "ls", "--quiet"], capture_output=True, text=True, timeout=60
    ).stdout.split()
    return {
        name for name in listed if len(name) == 64 and all(c in "0123456789abcdef" for c in name)
    }


@pytest.fixture(scope="session")
def docker_engine(pytestconfig) -> Iterator[str]:
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    # An engine that already answers is someone's (perhaps one `stackctl.engine start` started
    # earlier): used, and left running.
    already_running, _ = engine.engine_answers()
    with capture.global_and_fixture_disabled():
        try:
            started = engine.start()
        except engine.EngineError as error:
            pytest.fail(f"no Docker engine: {error}", pytrace=False)
        print(f"\n[docker] engine: {started}", flush=True)
    try:
        yield started
    finally:
        if not already_running:
            with capture.global_and_fixture_disabled():
                print(f"\n[docker] engine: {engine.stop()}", flush=True)


@pytest.fixture(scope="session")
def docker_stack(docker_engine, pytestconfig) -> Iterator[DockerStack]:
    env = {
        **os.environ,
        **DOCKER_TEST_ENV,
        # A throwaway secret: compose refuses to start without one (there is no default).
        "GRAFANA_ADMIN_PASSWORD": os.urandom(12).hex(),
    }
    stack = DockerStack(env)
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    # A project left over by an interrupted run goes, with its volumes: an old Prometheus TSDB
    # would answer with the old containers' series for minutes (the 5-minute lookback).
    stack.make("down", timeout=DOWN_TIMEOUT_S)
    stack.compose("down", "--volumes")
    anonymous_before = _anonymous_volumes()
    with capture.global_and_fixture_disabled():
        print(
            "[docker] images: pull, or build stand-ins (the first build takes minutes)", flush=True
        )
        started = time.monotonic()
        try:
            outcomes = images.ensure_all(stack.settings.state_dir / "images.log")
        except images.ImageError as error:
            pytest.fail(str(error), pytrace=False)
        summary = images.report(outcomes)
        if summary:
            print(summary, flush=True)
    built = [o for o in outcomes if o.source == "stand-in"]
    figure(
        f"images ready in {time.monotonic() - started:.0f} s: {len(built)} stand-ins, "
        f"{sum(o.source in ('present', 'pulled') for o in outcomes)} present or pulled, "
        f"{sum(o.source == 'unavailable' for o in outcomes)} unavailable"
    )
    started = time.monotonic()
    up = stack.make("up")
    if up.returncode != 0:
        logs = stack.make("logs", timeout=60).stdout[-6000:]
        stack.make("down", timeout=DOWN_TIMEOUT_S)
        pytest.fail(f"STACK=docker make up failed:\n{up.stdout[-6000:]}\n{up.stderr}\n{logs}")
    figure(f"`STACK=docker make up` (build + up --wait) took {time.monotonic() - started:.0f} s")
    stack.outcomes = outcomes
    try:
        yield stack
    finally:
        down = stack.make("down", timeout=DOWN_TIMEOUT_S)
        left = _leftovers()
        new_anonymous = _anonymous_volumes() - anonymous_before
        figure(
            f"`make down`: exit {down.returncode}; left behind: "
            + ", ".join(f"{len(v)} {k}s" for k, v in left.items())
            + f", {len(new_anonymous)} new anonymous volumes"
        )
        # The named volumes (Prometheus's data...) outlive `make down` on purpose; the test's own
        # go now, so that the run leaves nothing behind.
        stack.compose("down", "--volumes")
        assert down.returncode == 0, f"make down failed:\n{down.stdout}\n{down.stderr}"
        assert not left["container"] and not left["network"], left
        assert not new_anonymous, f"anonymous volumes left behind: {new_anonymous}"


@pytest.fixture(scope="session")
def stack(docker_stack: DockerStack) -> DockerStack:
    """The name the shared contract tests (tests/integration/test_stack.py) ask for."""
    return docker_stack


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if FIGURES:
        terminalreporter.section("docker figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
