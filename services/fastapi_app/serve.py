"""Launcher of the FastAPI service on Uvicorn: `python -m fastapi_app.serve`.

Checks the environment, prepares the metrics directory, serves the aggregated metrics from
this (supervisor) process (`gateway_common.launch`), then hands over to Uvicorn, which spawns
the workers (`gateway_common.uvicorn_launch`).
"""

from __future__ import annotations

import sys

from fastapi_app.settings import INTERFACE, load_asgi_settings
from gateway_common import launch
from gateway_common.uvicorn_launch import run_uvicorn

LAUNCHER = "fastapi_app.serve"
APP_FACTORY = "fastapi_app.app:create_app"


def main(app_factory: str = APP_FACTORY) -> int:
    """Serve `app_factory` (another app only for the overhead bench's bare app)."""
    started = launch.prepare(LAUNCHER, load_asgi_settings, INTERFACE)
    run_uvicorn(app_factory, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
