"""What every FastAPI launcher does before it hands over to its server.

`python -m fastapi_app.serve` (Uvicorn), `.hypercorn_serve`, `.granian_serve` and
`.daphne_serve` all start here: check the environment, log JSON, prepare the metrics directory
and serve the aggregated metrics from the launcher, the process that stays alive while the
server's workers run. (Gunicorn's master does the same from the hooks of
services/fastapi_app/gunicorn.conf.py.)
"""

from __future__ import annotations

import logging
import logging.config
import sys
from dataclasses import dataclass
from typing import Any

from fastapi_app.settings import INTERFACE, AsgiSettings, load_asgi_settings
from gateway_common.logging import log_config_dict
from gateway_common.settings import ConfigError

CONFIG_ERROR_EXIT = 2

logger = logging.getLogger("fastapi_app.launch")


@dataclass(frozen=True)
class Launch:
    settings: AsgiSettings
    log_config: dict[str, Any]  # what the server's workers configure logging from


def prepare(launcher: str, max_workers: int | None = None) -> Launch:
    """Settings, logging and metrics of a launcher; exits with 2 on a configuration error.

    ``max_workers``: the most worker processes the server can run (Daphne: one).
    """
    try:
        settings = load_asgi_settings()
        if max_workers is not None and settings.workers > max_workers:
            raise ConfigError(
                f"ASGI_WORKERS must be at most {max_workers} for {settings.server}, "
                f"got {settings.workers} (run more replicas instead)"
            )
        # Imported here so a missing PROMETHEUS_MULTIPROC_DIR is reported like the others.
        from gateway_common import metrics
    except ConfigError as exc:
        print(f"{launcher}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT) from None

    log_config = log_config_dict(settings.service, settings.log_level)
    logging.config.dictConfig(log_config)

    metrics.prepare_multiproc_dir()
    metrics.set_server_gauges(settings.service, INTERFACE, settings.workers, settings.capacity)
    metrics.serve_metrics(settings.metrics_bind)
    logger.info(
        f"starting {settings.server}",
        extra={
            "fields": {
                "bind": str(settings.bind),
                "workers": settings.workers,
                "root_path": settings.root_path,
            }
        },
    )
    return Launch(settings=settings, log_config=log_config)
