"""One JSON line per request, with the request id; JSON server logs."""

from __future__ import annotations

import json
import logging
import logging.config
import sys

import pytest
from service_clients import ServiceClient

from gateway_common.logging import REQUEST_LOGGER_NAME, JsonFormatter, log_config_dict


def test_one_json_line_per_request(client: ServiceClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER_NAME):
        client.get("/io?ms=1", headers={"X-Request-ID": "log-1"})
    records = [r for r in caplog.records if r.name == REQUEST_LOGGER_NAME]
    assert len(records) == 1
    line = json.loads(JsonFormatter(client.service).format(records[0]))
    assert line["service"] == client.service
    assert line["request_id"] == "log-1"
    assert line["method"] == "GET"
    assert line["path"] == "/io"
    assert line["route"] == "/io"
    assert line["status"] == 200
    assert line["duration_ms"] >= 1.0
    assert line["level"] == "info"
    assert line["time"].endswith("Z")


def test_formatter_includes_exceptions() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter("flask").format(record))
    assert line["message"] == "failed"
    assert "ValueError: bad" in line["exception"]


def test_log_config_dict_is_valid_and_silences_access_logs() -> None:
    config = log_config_dict("fastapi", "debug")
    logging.config.dictConfig(config)
    try:
        assert logging.getLogger("uvicorn.access").propagate is False
        assert logging.getLogger("gunicorn.access").level == logging.CRITICAL
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler.formatter, JsonFormatter)
        assert handler.formatter.service == "fastapi"
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        logging.getLogger().handlers.clear()
        logging.getLogger().setLevel(logging.WARNING)
