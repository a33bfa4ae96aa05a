"""JSON logs: one line per record, and a line per request that is worth one.

Server loggers (Gunicorn, Uvicorn, Hypercorn, Granian, Daphne) and the request log share
`JsonFormatter`, so a log pipeline reads one format. Request lines carry their fields in
`extra={"fields": {...}}`.

nginx's access log already has a line for every request, with the same request id, status and
timings; the services add theirs at `info` only for errors (status >= 400) and slow requests,
and at `debug` for all (LOG_LEVEL=debug). Formatting and writing a line per request cost more
than the rest of the instrumentation together (docs/monitoring.md).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

REQUEST_LOGGER_NAME = "gateway.request"
# A request that takes this long is logged at info whatever its status.
SLOW_REQUEST_S = 1.0

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


def request_log_level(status: int, duration_s: float) -> int:
    """info for errors and slow requests, debug for the rest (nginx logs every request)."""
    if status >= 400 or duration_s >= SLOW_REQUEST_S:
        return logging.INFO
    return logging.DEBUG


def request_log_enabled(status: int, duration_s: float) -> bool:
    """Whether `log_request` writes this request's line: callers skip building it otherwise."""
    return request_logger.isEnabledFor(request_log_level(status, duration_s))


def log_request(
    *,
    service: str,
    request_id: str,
    method: str,
    path: str,
    route: str,
    status: int,
    duration_s: float,
    level: int | None = None,
) -> None:
    """The request's JSON line, at `level` (default: `request_log_level`) when it is enabled."""
    if level is None:
        level = request_log_level(status, duration_s)
    if not request_logger.isEnabledFor(level):
        return
    fields = {
        "service": service,
        "request_id": request_id,
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "duration_ms": round(duration_s * 1000, 3),
    }
    request_logger.log(level, "request", extra={"fields": fields})


# The servers' own loggers: routed to the JSON handler (some install plain-text handlers of
# their own otherwise: Granian's `_granian`, Hypercorn's `hypercorn.error`).
SERVER_LOGGERS = (
    "gunicorn.error",
    "uvicorn",
    "uvicorn.error",
    "hypercorn.error",
    "_granian",
    "daphne",
)
ACCESS_LOGGERS = ("gunicorn.access", "uvicorn.access", "hypercorn.access", "granian.access")


def log_config_dict(service: str, level: str) -> dict[str, Any]:
    """`logging.config.dictConfig` document for a server process and its workers.

    Everything goes to stdout as JSON. The servers' access loggers are
    silenced: nginx's access log has every request, and the apps log their own (errors and
    slow ones at info, all at debug) with the request id. So is Django's line for every 4xx
    (`django.request` warns "Not Found: /path"); its 5xx lines, with the traceback, stay.
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
            **{
                name: {"level": level_name, "handlers": [], "propagate": True}
                for name in SERVER_LOGGERS
            },
            **{
                name: {"level": "CRITICAL", "handlers": [], "propagate": False}
                for name in ACCESS_LOGGERS
            },
            "django.request": {"level": "ERROR", "handlers": [], "propagate": True},
        },
    }
