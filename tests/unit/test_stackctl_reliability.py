"""stackctl's reliability pieces that need no running stack: the chaos profile, the rate-limit
exemption, the stop order and signals, the reload command, and process helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from stackctl import native, processes
from stackctl.__main__ import build_parser
from stackctl.settings import load_settings


def test_chaos_profile_moves_every_port_by_20000():
    chaos = load_settings("chaos", {})
    default = load_settings("default", {})
    assert chaos.ports == {name: port + 20000 for name, port in default.ports.items()}
    assert chaos.ports["public"] == 28080 and chaos.state_dir.name == "chaos"


def test_rate_limit_exemption_defaults_to_loopback_and_is_checked():
    assert native.rate_limit_exempt(load_settings("test", {})) == "127.0.0.1/32"
    moved = load_settings("test", {"RATE_LIMIT_EXEMPT": " 10.1.2.3/8 "})
    assert native.rate_limit_exempt(moved) == "10.0.0.0/8"
    with pytest.raises(native.NativeStackError, match="RATE_LIMIT_EXEMPT"):
        native.rate_limit_exempt(load_settings("test", {"RATE_LIMIT_EXEMPT": "127.0.0.1 1;"}))


def test_down_stops_nginx_gracefully_before_gunicorn():
    stages = native.STOP_STAGES
    position = {name: index for index, stage in enumerate(stages) for name in stage}
    assert position["nginx"] < position["flask"]
    assert position["nginx"] == position["fastapi"]
    assert native.STOP_SIGNALS["nginx"] == signal.SIGQUIT


def test_reload_is_a_command():
    assert build_parser().parse_args(["reload"]).command == "reload"


def test_stop_group_sends_the_signal_it_is_given(tmp_path):
    marker = tmp_path / "got"
    script = (
        "import signal, sys, time, pathlib\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "signal.signal(signal.SIGQUIT, lambda *a: (p.write_text('quit'), sys.exit(0)))\n"
        "p.write_text('ready')\n"
        "time.sleep(30)\n"
    )
    pid = processes.spawn(
        [sys.executable, "-c", script],
        env=dict(os.environ),
        log_path=tmp_path / "log",
        cwd=tmp_path,
    )
    processes.write_pid(tmp_path / "p.pid", pid)
    record = processes.read_pid(tmp_path / "p.pid")
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text() == "ready"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert processes.stop_group(record, grace_s=10, stop_signal=signal.SIGQUIT) is False
    assert marker.read_text() == "quit"


def test_children_lists_live_children_and_skips_by_command_line():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(20)"])
    try:
        assert child.pid in processes.children(os.getpid())
        assert child.pid not in processes.children(os.getpid(), skip=("time.sleep",))
    finally:
        child.kill()
        child.wait()
    assert child.pid not in processes.children(os.getpid())
