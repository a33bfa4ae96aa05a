"""Start, find and stop the processes of the stack, with pid files that survive pid reuse."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int


def _start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid``, which tells a live process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; the fields after its closing paren are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def write_pid(path: Path, pid: int) -> None:
    ticks = _start_ticks(pid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid} {ticks or 0}\n")


def read_pid(path: Path) -> PidRecord | None:
    try:
        pid_text, ticks_text = path.read_text().split()
        return PidRecord(int(pid_text), int(ticks_text))
    except (OSError, ValueError):
        return None


def is_alive(record: PidRecord | None) -> bool:
    if record is None:
        return False
    ticks = _start_ticks(record.pid)
    if ticks is None or ticks != record.start_ticks:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{record.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return False


def spawn(argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path) -> int:
    """Start a detached process in its own session (so its whole group can be signalled)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process.pid


def stop_group(
    record: PidRecord, *, grace_s: float, stop_signal: signal.Signals = signal.SIGTERM
) -> bool:
    """Signal the process group (SIGTERM unless told), wait up to ``grace_s``, then SIGKILL.

    True if it had to kill. nginx is stopped with SIGQUIT: its graceful shutdown (SIGTERM is
    nginx's *fast* shutdown, which drops the requests in flight).
    """
    if not is_alive(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, stop_signal)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_alive(record) and not _group_exists(record.pid):
            return False
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGKILL)
    for _ in range(50):
        _reap(record.pid)
        if not _group_exists(record.pid):
            break
        time.sleep(0.1)
    return True


def signal_process(record: PidRecord | None, sig: signal.Signals) -> bool:
    """Send ``sig`` to the one process ``record`` names (not its group); False if it is gone."""
    if not is_alive(record):
        return False
    assert record is not None
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return False
    return True


def children(pid: int, *, skip: tuple[str, ...] = ()) -> set[int]:
    """Live (non-zombie) child pids of ``pid``, from /proc; ``skip``: command-line substrings."""
    found: set[int] = set()
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid or fields[0] == "Z":
                continue
            cmdline = (stat_path.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if not any(part in cmdline for part in skip):
            found.add(int(stat_path.parent.name))
    return found


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def port_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now: nothing answers there and nothing holds it.

    The bind catches a socket that is bound but not listening yet (or listening on another
    address of the port); SO_REUSEADDR, as every server of the stack sets it, ignores the
    TIME_WAIT leftovers of a stack that just stopped.
    """
    if port_in_use(host, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def listener_of(port: int) -> str:
    """Best effort: which process holds ``port`` (for error messages), e.g. ``nginx (pid 42)``."""
    try:
        result = subprocess.run(
            ["ss", "-Htanp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "an unknown process (`ss` is not available)"
    # ss prints users:(("nginx",pid=42,fd=6),...) when it may see the owner.
    holders = dict.fromkeys(f"{name} (pid {pid})" for name, pid in SS_USER.findall(result.stdout))
    if holders:
        return ", ".join(holders)
    return "a process this user may not see" if result.stdout.strip() else "an unknown process"


SS_USER = re.compile(r'\("([^"]+)",pid=(\d+),')
