"""The app factory Granian calls in each worker (flask_app.granian_serve's target)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

from flask_app.worker_signals import StopGuard

if TYPE_CHECKING:
    from flask import Flask


def create_app() -> Flask:
    # Granian installs the worker's own SIGTERM/SIGINT handlers after this returns.
    guard = StopGuard(signal.SIGINT, signal.SIGTERM)
    from flask_app import app  # the slow part: Flask and the app's modules

    created = app.create_app()
    guard.imported()
    return created
