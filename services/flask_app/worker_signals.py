"""A worker told to stop while it still imports the app stops as soon as it has it.

uWSGI (lazy-apps) and Granian import the app in each worker after the fork, and install their
own stop handlers only once that is done. Until then the worker holds its parent's handlers
(uWSGI's master's, Granian's main process's), which take the signal as meant for the parent:
the worker then starts serving and ignores the stop, and the server's graceful stop hangs
until its timeout kills the worker. Started first thing in the worker's import, a StopGuard
keeps a stop that comes during the import and exits once the import is done, and exits at once
on one that comes after it, until the server's own handlers replace the guard's. Either way the
worker has nothing in flight yet.

Exiting after the import rather than during it leaves the parent time to see its own stop
first: Granian's main process counts a worker that exits before it asked as a crash.
"""

from __future__ import annotations

import os
import signal
from types import FrameType


class StopGuard:
    def __init__(self, *signals: signal.Signals) -> None:
        self.importing = True
        self.stop_requested = False
        for stop_signal in signals:
            signal.signal(stop_signal, self._on_stop)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.importing:
            os._exit(0)
        self.stop_requested = True

    def imported(self) -> None:
        """The app is ready: leave now if a stop came meanwhile."""
        self.importing = False
        if self.stop_requested:
            os._exit(0)
