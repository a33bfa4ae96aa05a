"""Launcher of the Django service over ASGI: `python -m django_app.serve`.

Checks the environment, prepares the metrics directory, serves the aggregated metrics from
this (supervisor) process, then hands over to Uvicorn, which spawns the workers. Uvicorn's
workers are *spawned*, not forked: each imports the project fresh, so nothing here leaks into
them except the environment.
"""

from __future__ import annotations

import logging
import logging.config
import sys

import uvicorn

from django_app.settings_env import ASGI, load_django_settings
from gateway_common.limits import LISTEN_BACKLOG, connection_limit
from gateway_common.logging import log_config_dict
from gateway_common.settings import ConfigError

APP_FACTORY = "django_app.app:create_asgi_app"
GRACEFUL_SHUTDOWN_S = 30

logger = logging.getLogger("django_app.serve")


def main() -> int:
    try:
        settings = load_django_settings(ASGI)
        # Imported here so a missing PROMETHEUS_MULTIPROC_DIR is reported like the others.
        from gateway_common import metrics
    except ConfigError as exc:
        print(f"django_app.serve: configuration error: {exc}", file=sys.stderr)
        return 2

    log_config = log_config_dict(settings.service, settings.log_level)
    logging.config.dictConfig(log_config)

    metrics.prepare_multiproc_dir()
    metrics.set_server_gauges(settings.service, ASGI, settings.workers, settings.capacity)
    metrics.serve_metrics(settings.metrics_bind)
    logger.info(
        "starting uvicorn",
        extra={
            "fields": {
                "bind": str(settings.bind),
                "workers": settings.workers,
                "root_path": settings.root_path,
            }
        },
    )
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.bind.host,
        port=settings.bind.port,
        workers=settings.workers,
        loop="uvloop",
        http="httptools",
        # The app refuses WebSocket handshakes itself (django_app.asgi_front), with a JSON 404.
        lifespan="on",
        timeout_keep_alive=settings.keepalive_s,
        # Past its open-file limit a worker answers with 503 instead of failing accept().
        limit_concurrency=connection_limit(),
        backlog=LISTEN_BACKLOG,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        root_path=settings.root_path,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        access_log=False,  # the app logs every request as JSON, with its request id
        log_config=log_config,
        log_level=settings.log_level,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
