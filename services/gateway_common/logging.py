"""JSON logs: one line per record, and one line per request.

Server loggers (gunicorn, uvicorn) and the request log share `JsonFormatter`, so a log
pipeline reads one format. Request lines carry their fields in `extra={"fields": {...}}`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

REQUEST_LOGGER_NAME = "gateway.request"

request_logger = logging.getLogger(REQUEST_LOGGER_NAME)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.fromtimestamp(record.created, UTC)
        document: dict[str, Any] = {
            "time": timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


def log_request(
    *,
    service: str,
    request_id: str,
    method: str,
    path: str,
    route: str,
    status: int,
    duration_ms: float,
) -> None:
    """The one JSON line every request gets."""
    fields = {
        "service": service,
        "request_id": request_id,
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
    }
    request_logger.info("request", extra={"fields": fields})


def log_config_dict(service: str, level: str) -> dict[str, Any]:
    """`logging.config.dictConfig` document for a server process and its workers.

    Everything goes to stdout as JSON. Gunicorn's and uvicorn's access loggers are
    silenced: the apps log each request themselves, with the request id.
    """
    level_name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "gateway_common.logging.JsonFormatter", "service": service},
        },
        "handlers": {
            "stdout_json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": level_name, "handlers": ["stdout_json"]},
        "loggers": {
            "gunicorn.error": {"level": level_name, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            "uvicorn": {"level": level_name, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level_name, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
    }
