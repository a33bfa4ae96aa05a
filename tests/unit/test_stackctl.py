"""The stack controller's pieces that need no running stack: rendering, settings, pid files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from loadtests.bench import options as bench_options
from stackctl import native, processes
from stackctl.addresses import stack_env
from stackctl.render import MissingVariablesError, main, placeholders, render_text
from stackctl.settings import SettingsError, load_settings


def test_render_replaces_only_upper_case_placeholders():
    text = "listen ${PORT}; proxy_set_header Host $host; rewrite ^(.*)$ $1; ${lower}"
    assert render_text(text, {"PORT": "8080"}) == (
        "listen 8080; proxy_set_header Host $host; rewrite ^(.*)$ $1; ${lower}"
    )


def test_render_refuses_to_leave_a_placeholder_empty():
    with pytest.raises(MissingVariablesError) as missing:
        render_text("a ${ONE} b ${TWO} c ${ONE}", {"TWO": "2"}, source="x.template")
    assert missing.value.names == ["ONE"]
    assert "x.template" in str(missing.value) and "ONE" in str(missing.value)


def test_render_allows_an_explicitly_empty_value():
    assert render_text("user ${DIRECTIVE};", {"DIRECTIVE": ""}) == "user ;"


def test_render_cli_writes_files_and_reports_missing_values(tmp_path, capsys, monkeypatch):
    template = tmp_path / "a.template"
    template.write_text("port ${GL_TEST_PORT}\n")
    output = tmp_path / "out" / "a.conf"
    monkeypatch.setenv("GL_TEST_PORT", "1234")
    assert main([str(template), str(output)]) == 0
    assert output.read_text() == "port 1234\n"
    monkeypatch.delenv("GL_TEST_PORT")
    assert main([str(template), str(tmp_path / "b.conf")]) == 1
    assert "GL_TEST_PORT" in capsys.readouterr().err
    assert not (tmp_path / "b.conf").exists()
    assert main([str(template)]) == 2


def test_placeholders_lists_names():
    assert placeholders("${A} ${B_2} $c ${d}") == {"A", "B_2"}


def test_test_profile_moves_every_port_away_from_the_default_one():
    default = load_settings("default", {})
    test = load_settings("test", {})
    assert set(default.ports.values()).isdisjoint(test.ports.values())
    assert test.ports["public"] == 18080
    assert test.state_dir.name == "test"


def test_port_overrides_are_validated():
    assert load_settings("default", {"HTTP_PORT": "8088"}).ports["public"] == 8088
    with pytest.raises(SettingsError, match="HTTP_PORT must be a port number"):
        load_settings("default", {"HTTP_PORT": "eighty"})
    with pytest.raises(SettingsError, match="between 1 and 65535"):
        load_settings("default", {"PROMETHEUS_PORT": "70000"})
    with pytest.raises(SettingsError, match="both listen on port 8081"):
        load_settings("default", {"HTTP_PORT": "8081"})
    assert load_settings("test", {"STACK_PORT_OFFSET": "2000"}).ports["public"] == 20080
    assert load_settings("chaos", {"STACK_PORT_OFFSET": "2000"}).ports["public"] == 30080
    with pytest.raises(SettingsError, match="STACK_PORT_OFFSET must be between"):
        load_settings("test", {"STACK_PORT_OFFSET": "50000"})
    with pytest.raises(SettingsError, match="unknown profile"):
        load_settings("staging", {})


def test_pid_file_tells_a_live_process_from_a_reused_pid(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = tmp_path / "child.pid"
        processes.write_pid(pid_file, child.pid)
        record = processes.read_pid(pid_file)
        assert processes.is_alive(record)
        # Same pid, different start time: a different process that reused the number.
        assert not processes.is_alive(processes.PidRecord(record.pid, record.start_ticks + 1))
    finally:
        child.kill()
        child.wait()
    assert not processes.is_alive(record)
    assert processes.read_pid(tmp_path / "missing.pid") is None


def test_stop_group_terminates_the_whole_process_group(tmp_path):
    log = tmp_path / "group.log"
    script = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    )
    pid = processes.spawn(
        [sys.executable, "-c", script], env=dict(os.environ), log_path=log, cwd=tmp_path
    )
    pid_file = tmp_path / "group.pid"
    processes.write_pid(pid_file, pid)
    record = processes.read_pid(pid_file)
    assert processes.is_alive(record)
    killed = processes.stop_group(record, grace_s=5)
    assert not killed
    assert not processes.is_alive(record)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_env_follows_the_offset_the_port_overrides_and_the_profile(tmp_path):
    moved = load_settings(
        "default",
        {"STACK_PORT_OFFSET": "300", "PROMETHEUS_PORT": "9555", "STATE_DIR": str(tmp_path)},
    )
    env = stack_env(moved, "native")
    assert env["PUBLIC_URL"] == "http://127.0.0.1:8380" and env["HTTP_PORT"] == "8380"
    assert env["WS_URL"] == "ws://127.0.0.1:8380"
    assert env["PROMETHEUS_URL"] == "http://127.0.0.1:9555"
    assert env["LOCUST_METRICS_BIND"] == "127.0.0.1:9946"
    assert env["PROMETHEUS_TARGETS_DIR"] == str(tmp_path / "prometheus-targets")
    test = stack_env(load_settings("test", {"HTTP_PORT": "8555"}), "native")
    # The port overrides move the default profile only; the test stack keeps its own ports.
    assert test["PUBLIC_URL"] == "http://127.0.0.1:18080" and test["STACK_PROFILE"] == "test"


def test_env_command_prints_lines_a_shell_can_eval(tmp_path):
    environ = {
        "PATH": os.environ["PATH"],
        "STACK_PORT_OFFSET": "300",
        "HTTP_PORT": "8555",
        "STATE_DIR": str(tmp_path / "a dir"),
    }
    printed = subprocess.run(
        [sys.executable, "-m", "stackctl", "--stack", "native", "--profile", "default", "env"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # What the Makefile's bench and locust targets do with it.
    script = f'set -a; eval "$1"; set +a; {sys.executable} -c "{ECHO_ENV}"'
    seen = subprocess.run(
        ["bash", "-c", script, "bash", printed],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert seen[:3] == [
        "http://127.0.0.1:8555",
        "http://127.0.0.1:9390",
        str(tmp_path / "a dir" / "prometheus-targets"),
    ]


ECHO_ENV = (
    "import os; "
    "print(os.environ['PUBLIC_URL']); print(os.environ['PROMETHEUS_URL']); "
    "print(os.environ['PROMETHEUS_TARGETS_DIR'])"
)


def test_bench_defaults_to_the_addresses_stackctl_names(tmp_path):
    environ = {"STACK_PORT_OFFSET": "300", "STATE_DIR": str(tmp_path)}
    options = bench_options.parse([], environ=environ)
    env = stack_env(load_settings("default", environ), "native")
    assert options.url == env["PUBLIC_URL"] == "http://127.0.0.1:8380"
    assert options.prometheus_url == env["PROMETHEUS_URL"] == "http://127.0.0.1:9390"
    on_test = bench_options.parse([], environ={"STACK_PROFILE": "test"})
    assert on_test.url == "http://127.0.0.1:18080"
    with pytest.raises(bench_options.UsageError, match="STACK_PORT_OFFSET"):
        bench_options.parse([], environ={"STACK_PORT_OFFSET": "lots"})


def test_every_component_has_exactly_one_health_probe(tmp_path):
    settings = load_settings("test", {"STATE_DIR": str(tmp_path)})
    rendered = native.RenderedConfigs(
        nginx_conf=tmp_path / "nginx.conf",
        nginx_run_dir=tmp_path / "nginx",
        prometheus_yml=tmp_path / "prometheus.yml",
        redis_conf=tmp_path / "redis.conf",
    )
    stack = native.components(settings, rendered)
    # components() is pure: it points the processes at the configs and renders nothing.
    assert list(tmp_path.iterdir()) == []
    assert [component.name for component in stack] == list(native.HEALTH_PROBES)
    for component in stack:
        assert component.health_url == native.probe_url(settings, component.name)
        assert native.HEALTH_PROBES[component.name][0] in component.port_names
    nginx = next(component for component in stack if component.name == "nginx")
    assert nginx.argv[nginx.argv.index("-p") + 1] == str(rendered.nginx_run_dir)
    redis = next(component for component in stack if component.name == "redis")
    assert str(rendered.redis_conf) in redis.argv
    # Redis answers PING at the very URL the services are given as REDIS_URL.
    assert redis.health_url == settings.redis_url
