"""Launcher of the flask-uwsgi variant: `python -m flask_app.uwsgi_serve`.

Checks the environment, prepares the metrics directory and sets the server gauges, runs
`uwsgi --ini services/flask_app/uwsgi.ini` as its child, serves the aggregated metrics from a
daemon thread of its own, and stays until uWSGI has exited. Why a process around uWSGI:

- **Graceful stop.** uWSGI 2.0 has no signal for it: SIGTERM (with die-on-term) and SIGINT make
  the master SIGINT its workers at once (`kill_them_all`), dropping the requests in flight. Only
  the master FIFO's `q` stops gracefully (workers finish their requests, then exit). The launcher
  turns SIGTERM/SIGINT into `q`, and kills uWSGI after GRACEFUL_SHUTDOWN_S if it is not done.
- **Signals to a whole group.** A uWSGI worker takes SIGTERM as "exit now", and the native stack
  stops a component by signalling its process group. uWSGI runs in a group of its own, so only
  the launcher hears those signals.
- **Metrics from a process that always runs Python.** uWSGI's master runs its C loop (a Python
  thread there runs only while the master releases the GIL) and re-executes itself on some
  reloads; a mule would be one more process the master kills and respawns, and none of them
  fixes the stop. The launcher is a plain Python process that lives exactly as long as uWSGI.
- **Nothing left behind.** uWSGI's master gets SIGKILL if the launcher dies (Linux
  PR_SET_PDEATHSIG) and its workers follow the master (`no-orphans`): a dead launcher never
  leaves a server holding the port.

SIGHUP is a graceful reload: the launcher asks the master for a chain reload (`c`), which replaces
the workers one at a time, each new one importing the code afresh (lazy-apps), while the master
keeps the listening socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from flask_app.settings import (
    INTERFACE,
    REQUEST_TIMEOUT_S,
    WsgiSettings,
    load_server_settings,
)
from gateway_common import launch, variants
from gateway_common.limits import GRACEFUL_SHUTDOWN_S, LISTEN_BACKLOG

LAUNCHER = "flask_app.uwsgi_serve"
SERVER = "uwsgi"
INI = Path(__file__).with_name("uwsgi.ini")
# Master FIFO commands (uWSGI 2.0 core/fifo.c).
FIFO_GRACEFUL_STOP = b"q"
FIFO_CHAIN_RELOAD = b"c"
# How often the launcher looks at its child and its pending signals.
POLL_S = 0.2
# During a stop, how often the workers still running are told again (Supervisor._stopping).
RESTOP_S = 1.0
# Linux caps a listen queue at net.core.somaxconn; uWSGI refuses to start above it.
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
_PR_SET_PDEATHSIG = 1

logger = logging.getLogger("flask_app.uwsgi_serve")


@dataclass(frozen=True)
class IniValues:
    """What uwsgi.ini reads from the environment, as `$(NAME)`: checked values only."""

    service: str
    bind: str
    workers: int
    threads: int
    request_timeout_s: int
    graceful_shutdown_s: int
    master_fifo: Path

    @classmethod
    def from_settings(cls, settings: WsgiSettings, master_fifo: Path) -> IniValues:
        return cls(
            service=settings.service,
            bind=str(settings.bind),
            workers=settings.workers,
            threads=settings.threads,
            request_timeout_s=REQUEST_TIMEOUT_S,
            graceful_shutdown_s=GRACEFUL_SHUTDOWN_S,
            master_fifo=master_fifo,
        )

    def environ(self) -> dict[str, str]:
        return {
            variants.VARIANT_ENV: self.service,
            "WSGI_BIND": self.bind,
            "WSGI_WORKERS": str(self.workers),
            "WSGI_THREADS": str(self.threads),
            "WSGI_REQUEST_TIMEOUT_S": str(self.request_timeout_s),
            "WSGI_GRACEFUL_SHUTDOWN_S": str(self.graceful_shutdown_s),
            "WSGI_MASTER_FIFO": str(self.master_fifo),
        }


def listen_backlog() -> int:
    """LISTEN_BACKLOG, or the kernel's cap if lower (uWSGI exits rather than be capped)."""
    try:
        cap = int(SOMAXCONN.read_text().strip())
    except (OSError, ValueError):
        return LISTEN_BACKLOG
    return max(1, min(LISTEN_BACKLOG, cap))


def uwsgi_command() -> list[str]:
    """uWSGI (pyuwsgi's `uwsgi` script, beside this interpreter) on the ini file.

    `listen` is the one setting on the command line: uWSGI applies it while it parses, before it
    substitutes `$(NAME)`, and its value depends on the machine (listen_backlog).
    """
    script = Path(sys.executable).parent / "uwsgi"
    return [str(script), "--ini", str(INI), "--listen", str(listen_backlog())]


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook giving the child SIGKILL when the launcher dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return hook


def start_uwsgi(environ: dict[str, str]) -> subprocess.Popen[bytes]:
    """uWSGI in a process group of its own, its output on the launcher's (the service log)."""
    return subprocess.Popen(
        uwsgi_command(),
        env=environ,
        stdin=subprocess.DEVNULL,
        process_group=0,
        # Called while this process has one thread (before the metrics server starts).
        preexec_fn=_die_with_parent(),
    )


def send_fifo(fifo: Path, command: bytes) -> bool:
    """Write a master FIFO command; False if the master is not reading it (not up, or gone)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader; ENOENT: not created yet
        return False
    try:
        os.write(fd, command)
    finally:
        os.close(fd)
    return True


@dataclass
class _Stop:
    """A stop in progress."""

    deadline: float  # killed then, if still running
    sent: bool = False  # the master has the `q`
    resend_at: float = 0.0


class Supervisor:
    """Runs one uWSGI child until it exits; stop and reload signals become FIFO commands."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.stop_requested = False
        self.reload_requested = False
        self.killed = False  # the stop was not graceful

    def install_signal_handlers(self) -> None:
        """Before the child starts: a signal that comes early is kept, not lost."""
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_requested = True

    def _on_reload(self, signum: int, _frame: FrameType | None) -> None:
        self.reload_requested = True

    def run(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for the child; return the launcher's exit status."""
        stop: _Stop | None = None
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self._exited(child, child.wait(timeout=POLL_S))
            now = time.monotonic()
            if self.stop_requested:
                stop = stop or _Stop(deadline=now + GRACEFUL_SHUTDOWN_S)
                self._stopping(child, stop, now)
            elif self.reload_requested:
                self.reload_requested = False
                sent = send_fifo(self.fifo, FIFO_CHAIN_RELOAD)
                logger.info("chain reload requested", extra={"fields": {"sent": sent}})

    def _stopping(self, child: subprocess.Popen[bytes], stop: _Stop, now: float) -> None:
        """One step of a graceful stop.

        The `q` is written once the master reads its FIFO (it creates it while starting).
        The master then SIGHUPs its workers and waits for each in turn, reading nothing else;
        a worker that missed its SIGHUP (one still starting) would keep it waiting until the
        deadline, so the launcher repeats the SIGHUP to the workers still running. A worker
        already stopping takes it as the same request again.
        """
        if not stop.sent:
            stop.sent = send_fifo(self.fifo, FIFO_GRACEFUL_STOP)
            stop.resend_at = now + RESTOP_S
            if stop.sent:
                logger.info("graceful stop requested", extra={"fields": {"uwsgi_pid": child.pid}})
        elif now >= stop.resend_at and not self.killed:
            for pid in child_pids(child.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGHUP)
            stop.resend_at = now + RESTOP_S
        if now > stop.deadline and not self.killed:
            logger.warning(
                "uwsgi still running after the graceful timeout; killing it",
                extra={"fields": {"graceful_shutdown_s": GRACEFUL_SHUTDOWN_S}},
            )
            kill(child)
            self.killed = True

    def _exited(self, child: subprocess.Popen[bytes], code: int) -> int:
        kill(child)  # the master is gone: none of its workers may outlive it
        fields = {"returncode": code, "killed": self.killed}
        if not self.stop_requested:
            logger.error("uwsgi exited on its own", extra={"fields": fields})
            return code if code > 0 else 1
        if code == 0:
            logger.info("uwsgi stopped", extra={"fields": fields})
            return 0
        logger.warning("uwsgi did not stop gracefully", extra={"fields": fields})
        return 1


def child_pids(pid: int) -> list[int]:
    """Live children of `pid` (Linux /proc; none elsewhere)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if int(parent) == pid and state != "Z":
                found.append(int(stat.parent.name))
    return found


def kill(child: subprocess.Popen[bytes]) -> None:
    """SIGKILL uWSGI's process group: the master and its workers.

    Safe after the master was reaped too: while a worker lives its group id cannot be reused,
    and an empty group is simply not found.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)


def load_uwsgi_settings() -> WsgiSettings:
    return load_server_settings(SERVER)


def main() -> int:
    settings = launch.load_settings(LAUNCHER, load_uwsgi_settings)
    from gateway_common import metrics  # importable now: load_settings checked for it

    launch.configure_logging(settings)
    metrics.reset_for_server(settings.service, INTERFACE, settings.workers, settings.capacity)

    runtime_dir = Path(tempfile.mkdtemp(prefix="flask-uwsgi-"))
    try:
        values = IniValues.from_settings(settings, runtime_dir / "master.fifo")
        supervisor = Supervisor(values.master_fifo)
        supervisor.install_signal_handlers()
        child = start_uwsgi({**os.environ, **values.environ()})
        logger.info(
            "starting uwsgi",
            extra={
                "fields": {
                    "uwsgi_pid": child.pid,
                    "bind": values.bind,
                    "workers": values.workers,
                    "threads": values.threads,
                }
            },
        )
        try:
            metrics.serve_metrics(settings.metrics_bind)
        except OSError:
            kill(child)
            child.wait()
            raise
        return supervisor.run(child)
    finally:
        shutil.rmtree(runtime_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
