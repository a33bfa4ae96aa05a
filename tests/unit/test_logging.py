"""Request lines with the request id (every request at debug; errors and slow ones at info);
JSON server logs."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import time

import pytest
from service_clients import ServiceClient

from gateway_common.logging import (
    REQUEST_LOGGER_NAME,
    SLOW_REQUEST_S,
    JsonFormatter,
    log_config_dict,
    request_log_level,
)


def _request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == REQUEST_LOGGER_NAME]


def test_one_json_line_per_request_at_debug(
    client: ServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=REQUEST_LOGGER_NAME):
        client.get("/io?ms=1", headers={"X-Request-ID": "log-1"})
    records = _request_records(caplog)
    assert len(records) == 1
    line = json.loads(JsonFormatter(client.service).format(records[0]))
    assert line["service"] == client.service
    assert line["request_id"] == "log-1"
    assert line["method"] == "GET"
    assert line["path"] == "/io"
    assert line["route"] == "/io"
    assert line["status"] == 200
    assert line["duration_ms"] >= 1.0
    assert line["level"] == "debug"
    assert line["time"].endswith("Z")


def test_at_info_only_errors_and_slow_requests_are_logged(
    client: ServiceClient, caplog: pytest.LogCaptureFixture
) -> None:
    slow_ms = int(SLOW_REQUEST_S * 1000) + 50
    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER_NAME):
        client.get("/hello", headers={"X-Request-ID": "fine-1"})
        client.get("/io?ms=abc", headers={"X-Request-ID": "bad-1"})
        client.get("/no-such-route", headers={"X-Request-ID": "missing-1"})
        client.get(f"/io?ms={slow_ms}", headers={"X-Request-ID": "slow-1"})
    lines = [json.loads(JsonFormatter(client.service).format(r)) for r in _request_records(caplog)]
    by_id = {line["request_id"]: line for line in lines}
    assert sorted(by_id) == ["bad-1", "missing-1", "slow-1"]
    assert (by_id["bad-1"]["status"], by_id["missing-1"]["status"]) == (400, 404)
    assert by_id["slow-1"]["status"] == 200
    assert by_id["slow-1"]["duration_ms"] >= SLOW_REQUEST_S * 1000
    assert {line["level"] for line in lines} == {"info"}


def test_request_log_level_rule() -> None:
    assert request_log_level(200, 0.01) == logging.DEBUG
    assert request_log_level(399, SLOW_REQUEST_S - 0.001) == logging.DEBUG
    assert request_log_level(400, 0.0) == logging.INFO
    assert request_log_level(503, 0.0) == logging.INFO
    assert request_log_level(200, SLOW_REQUEST_S) == logging.INFO


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


def test_a_request_line_not_written_is_not_built(caplog: pytest.LogCaptureFixture) -> None:
    """`finish_request` asks for the path only when the line is written; it always counts."""
    from gateway_common import metrics
    from gateway_common.observation import finish_request

    series = metrics.request_series("flask", "wsgi", "GET", "/lazy-test-only")
    asked: list[str] = []

    def path() -> str:
        asked.append("path")
        return "/lazy-test-only"

    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER_NAME):
        series.started()
        finish_request(series, 200, time.perf_counter(), "flask", "lazy-1", "GET", path)
        assert asked == []
        series.started()
        finish_request(series, 500, time.perf_counter(), "flask", "lazy-2", "GET", path)
        assert asked == ["path"]
    (record,) = _request_records(caplog)
    line = json.loads(JsonFormatter("flask").format(record))
    assert (line["request_id"], line["path"], line["status"]) == ("lazy-2", "/lazy-test-only", 500)
