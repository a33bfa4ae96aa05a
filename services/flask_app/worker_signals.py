"""A worker told to stop while it still imports the app stops as soon as it has it.

uWSGI (lazy-apps) and Granian import the app in each worker after the fork, and install their
own stop handlers only once that is done. Until then the worker holds its parent's handlers
(uWSGI's master's, Granian's main process's), which take the signal as meant for the parent:
the worker then starts serving and ignores the stop, and the server's graceful stop hangs
until its timeout kills the worker.

- A StopGuard, started first thing in the worker's import, keeps a stop that comes during the
  import and exits once the import is done; it exits at once on one that comes after it, until
  the server's own handlers replace the guard's. Either way the worker has nothing in flight.
- Before that, a forked worker runs its parent's handlers. Where the parent's are Python
  (Granian's main process), `keep_stops_in_children` wraps them: the parent still handles its
  signals, and a child remembers a stop for its StopGuard. (uWSGI's master is C: its launcher
  repeats the stop instead, flask_app.uwsgi_serve.)

Exiting after the import rather than during it leaves the parent time to see its own stop
first: Granian's main process counts a worker that exits before it asked as a crash.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]

# Set in a forked child that got a stop before its StopGuard was started.
_stopped_before_guard = False


def keep_stops_in_children(*signals: signal.Signals) -> None:
    """In a server's parent process, after it set its handlers and before it forks."""
    parent = os.getpid()

    def wrap(previous: Handler) -> Handler:
        def handler(signum: int, frame: FrameType | None) -> None:
            global _stopped_before_guard
            if os.getpid() == parent:
                previous(signum, frame)
            else:
                _stopped_before_guard = True

        return handler

    for stop_signal in signals:
        previous = signal.getsignal(stop_signal)
        if callable(previous):
            signal.signal(stop_signal, wrap(previous))


class StopGuard:
    def __init__(self, *signals: signal.Signals) -> None:
        self.importing = True
        self.stop_requested = _stopped_before_guard
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
