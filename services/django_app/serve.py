"""Launcher of the Django service over ASGI, on Uvicorn: `python -m django_app.serve`.

Checks the environment, prepares the metrics directory, serves the aggregated metrics from
this (supervisor) process (`gateway_common.launch`), then hands over to Uvicorn, which spawns
the workers (`gateway_common.uvicorn_launch`).
"""

from __future__ import annotations

import sys

from django_app.settings_env import ASGI, DjangoEnvSettings, load_django_settings
from gateway_common import launch
from gateway_common.uvicorn_launch import run_uvicorn

LAUNCHER = "django_app.serve"
APP_FACTORY = "django_app.app:create_asgi_app"


def load_asgi_settings() -> DjangoEnvSettings:
    return load_django_settings(ASGI)


def main() -> int:
    run_uvicorn(APP_FACTORY, launch.prepare(LAUNCHER, load_asgi_settings, ASGI))
    return 0


if __name__ == "__main__":
    sys.exit(main())
