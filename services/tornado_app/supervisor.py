"""The launcher's worker processes: spawned, watched, restarted, and stopped gracefully.

Why spawned (a fresh interpreter each) rather than forked by `tornado.process.fork_processes`:
the launcher serves the aggregated metrics from a thread, and a fork of a process with threads
can leave the child stuck on a lock another thread held (logging's, prometheus_client's);
`fork_processes` also never returns in the parent, forwards no signal to its children (a
stopped launcher would leave them serving) and gives up after `max_restarts`. Spawned workers
import the app fresh, as Uvicorn's do.

Why shared listening sockets rather than SO_REUSEPORT: every worker accepts from the launcher's
sockets (passed down as file descriptors), so there is one accept queue. With SO_REUSEPORT each
worker has its own queue, and the connections queued at a worker that dies are reset.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

POLL_S = 0.2
# A worker that dies sooner than this after its start is restarted after a growing delay, so a
# worker that cannot start does not spin; one that ran longer is restarted at once.
STABLE_UPTIME_S = 5.0
RESTART_DELAY_MIN_S = 0.5
RESTART_DELAY_MAX_S = 10.0

logger = logging.getLogger("tornado_app.supervisor")


@dataclass
class WorkerSlot:
    """One of the `workers` places, and the process that fills it now (if any)."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float = 0.0
    delay_s: float = RESTART_DELAY_MIN_S


class Supervisor:
    def __init__(
        self,
        command: list[str],
        sockets: list[socket.socket],
        workers: int,
        *,
        grace_s: float,
        on_exit: Callable[[int], None],
    ) -> None:
        """`command` + the sockets' descriptors starts a worker; `on_exit(pid)` runs for each
        worker that is gone (its live metrics are dropped)."""
        self.command = command
        self.sockets = sockets
        self.slots = [WorkerSlot(index) for index in range(workers)]
        self.grace_s = grace_s
        self.on_exit = on_exit
        self.stop_signal: int | None = None

    def pids(self) -> list[int]:
        return [slot.process.pid for slot in self.slots if slot.process is not None]

    def run(self) -> int:
        """Keep `workers` processes running until SIGTERM or SIGINT, then stop them."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._request_stop)
        while self.stop_signal is None:
            self._reap_and_restart()
            time.sleep(POLL_S)
        self._shutdown()
        return 0

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_signal = signum

    def _spawn(self, slot: WorkerSlot) -> None:
        fds = [sock.fileno() for sock in self.sockets]
        slot.process = subprocess.Popen([*self.command, *map(str, fds)], pass_fds=fds)
        slot.started = time.monotonic()
        logger.info(
            "worker started",
            extra={"fields": {"worker": slot.index, "worker_pid": slot.process.pid}},
        )

    def _reap_and_restart(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is not None and process.poll() is not None:
                self.on_exit(process.pid)
                lived_s = now - slot.started
                if lived_s >= STABLE_UPTIME_S:
                    slot.delay_s = RESTART_DELAY_MIN_S
                    slot.restart_at = now
                else:
                    slot.restart_at = now + slot.delay_s
                    slot.delay_s = min(slot.delay_s * 2, RESTART_DELAY_MAX_S)
                logger.warning(
                    "worker exited, restarting it",
                    extra={
                        "fields": {
                            "worker": slot.index,
                            "worker_pid": process.pid,
                            "exit_code": process.returncode,
                            "restart_in_s": round(slot.restart_at - now, 3),
                        }
                    },
                )
                slot.process = None
            if slot.process is None and now >= slot.restart_at:
                self._spawn(slot)

    def _shutdown(self) -> None:
        """Stop accepting, ask every worker to drain, kill those still there after grace_s."""
        for sock in self.sockets:
            sock.close()  # with the workers' copies gone too, new connections are refused
        running = [slot.process for slot in self.slots if slot.process is not None]
        logger.info(
            "stopping workers",
            extra={"fields": {"signal": self.stop_signal, "worker_pids": [p.pid for p in running]}},
        )
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while any(p.poll() is None for p in running) and time.monotonic() < deadline:
            time.sleep(POLL_S / 4)
        for process in running:
            if process.poll() is None:
                logger.warning(
                    "worker killed after the grace period",
                    extra={"fields": {"worker_pid": process.pid}},
                )
                process.kill()
                process.wait()
            self.on_exit(process.pid)
        logger.info("workers stopped")
