"""Validators shared by both services, so both answer with the same codes and messages.

Each returns a typed value or raises one `ApiError`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway_common import strict_json
from gateway_common.errors import ApiError

# Bounds of the contract (docs/architecture.md, "HTTP surface").
IO_MS_MIN, IO_MS_MAX = 0, 10_000
CPU_N_MIN, CPU_N_MAX = 1, 5_000_000
STREAM_EVENTS_MIN, STREAM_EVENTS_MAX = 1, 100
STREAM_INTERVAL_MS_MIN, STREAM_INTERVAL_MS_MAX = 0, 5_000
STREAM_TOTAL_MS_MAX = 60_000
MAX_BODY_BYTES = 64 * 1024
ECHO_MESSAGE_MAX_CHARS = 1000
ECHO_TAGS_MAX = 10
ECHO_TAG_MAX_CHARS = 32
ECHO_FIELDS = frozenset({"message", "tags"})
# Any JSON body: how deep arrays/objects may nest and how long an integer literal may be
# (the echo document needs depth 2 and no numbers; these stop the parser being abused).
JSON_MAX_DEPTH = 32
JSON_MAX_INT_DIGITS = 100
CHAT_ROOM_PATTERN = r"^[A-Za-z0-9_-]{1,32}$"
# `GET /poll`: how long to wait for a message; well under nginx's proxy_read_timeout (60 s),
# so the service, not the proxy, ends every wait.
POLL_TIMEOUT_MS_MIN, POLL_TIMEOUT_MS_MAX = 0, 30_000
# `POST /poll`: the text of a chat message. At most 6 bytes per character once encoded
# (`\u0000`), so the broadcast document always fits the chat bus's 64 KiB message bound.
CHAT_TEXT_MAX_CHARS = 10_000
POLL_FIELDS = frozenset({"text"})

# Digits only (optional sign), short enough that int() is cheap; range is checked after.
_INTEGER = re.compile(r"^[+-]?[0-9]{1,12}$")
_CHAT_ROOM = re.compile(CHAT_ROOM_PATTERN)
_SHOWN_VALUE_MAX_CHARS = 40  # echoed bad values are cut, they end up in logs and bodies


def _shown(raw: str) -> str:
    """repr() of a client value, cut to a readable length."""
    if len(raw) > _SHOWN_VALUE_MAX_CHARS:
        raw = raw[:_SHOWN_VALUE_MAX_CHARS] + "..."
    return repr(raw)


def int_param(name: str, values: Sequence[str], low: int, high: int) -> int:
    """A required integer query parameter in [low, high].

    `values` is every value the query string holds for `name` (Flask and Starlette
    disagree on which of repeated values `.get()` returns, so repeats are refused).
    """
    if not values:
        raise ApiError(400, "invalid_parameter", f"{name} is required", name)
    if len(values) > 1:
        raise ApiError(400, "invalid_parameter", f"{name} must be given once", name)
    raw = values[0]
    if _INTEGER.fullmatch(raw):
        value = int(raw)
        if low <= value <= high:
            return value
    raise ApiError(
        400,
        "invalid_parameter",
        f"{name} must be an integer between {low} and {high}, got {_shown(raw)}",
        name,
    )


def io_ms(values: Sequence[str]) -> int:
    return int_param("ms", values, IO_MS_MIN, IO_MS_MAX)


def cpu_n(values: Sequence[str]) -> int:
    return int_param("n", values, CPU_N_MIN, CPU_N_MAX)


@dataclass(frozen=True)
class StreamParams:
    events: int
    interval_ms: int


def stream_params(events_values: Sequence[str], interval_values: Sequence[str]) -> StreamParams:
    events = int_param("events", events_values, STREAM_EVENTS_MIN, STREAM_EVENTS_MAX)
    interval_ms = int_param(
        "interval_ms", interval_values, STREAM_INTERVAL_MS_MIN, STREAM_INTERVAL_MS_MAX
    )
    total = events * interval_ms
    if total > STREAM_TOTAL_MS_MAX:
        raise ApiError(
            400,
            "invalid_parameter",
            f"events * interval_ms must be at most {STREAM_TOTAL_MS_MAX}, "
            f"got {events} * {interval_ms} = {total}",
        )
    return StreamParams(events=events, interval_ms=interval_ms)


def payload_too_large_error() -> ApiError:
    return ApiError(
        413, "payload_too_large", f"request body must be at most {MAX_BODY_BYTES} bytes"
    )


def check_json_content_type(content_type: str | None) -> None:
    """Accept `application/json` (any parameters, e.g. charset); refuse anything else with 415."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = _shown(content_type) if content_type else "none"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {shown}",
        )


def check_body_size(size: int) -> None:
    if size > MAX_BODY_BYTES:
        raise payload_too_large_error()


def parse_json_body(body: bytes) -> Any:
    """Decode a strict JSON body (`strict_json`: UTF-8, bounded nesting and integers, no
    NaN/Infinity, duplicate keys or lone surrogates) or raise 400 malformed_json."""
    try:
        return strict_json.loads(
            body.decode("utf-8"), max_depth=JSON_MAX_DEPTH, max_int_digits=JSON_MAX_INT_DIGITS
        )
    except ValueError as exc:  # UnicodeDecodeError and StrictJsonError are ValueErrors
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from exc


def _invalid_body(message: str, field: str | None = None) -> ApiError:
    return ApiError(422, "invalid_body", message, field)


def echo_document(document: Any) -> dict[str, Any]:
    """Validate the `POST /echo` document; return it (only the keys that were sent)."""
    if not isinstance(document, dict):
        raise _invalid_body("body must be a JSON object")
    for key in document:
        if key not in ECHO_FIELDS:
            raise _invalid_body(f"unknown field {_shown(key)}", key)
    if "message" not in document:
        raise _invalid_body("message is required", "message")
    message = document["message"]
    if not isinstance(message, str) or not 1 <= len(message) <= ECHO_MESSAGE_MAX_CHARS:
        raise _invalid_body(
            f"message must be a string of 1 to {ECHO_MESSAGE_MAX_CHARS} characters", "message"
        )
    validated: dict[str, Any] = {"message": message}
    if "tags" in document:
        validated["tags"] = _echo_tags(document["tags"])
    return validated


def _echo_tags(tags: Any) -> list[str]:
    rule = (
        f"tags must be a list of at most {ECHO_TAGS_MAX} strings "
        f"of 1 to {ECHO_TAG_MAX_CHARS} characters"
    )
    if not isinstance(tags, list) or len(tags) > ECHO_TAGS_MAX:
        raise _invalid_body(rule, "tags")
    for tag in tags:
        if not isinstance(tag, str) or not 1 <= len(tag) <= ECHO_TAG_MAX_CHARS:
            raise _invalid_body(rule, "tags")
    return list(tags)


def echo_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    """Full `POST /echo` check, in the order both services apply: 415, 413, 400, 422."""
    check_json_content_type(content_type)
    check_body_size(len(body))
    return echo_document(parse_json_body(body))


def _room(values: Sequence[str], status: int) -> str:
    if len(values) != 1 or not _CHAT_ROOM.fullmatch(values[0]):
        shown = _shown(values[0]) if len(values) == 1 else ("none" if not values else "repeated")
        raise ApiError(
            status, "invalid_parameter", f"room must match {CHAT_ROOM_PATTERN}, got {shown}", "room"
        )
    return values[0]


def chat_room(values: Sequence[str]) -> str:
    """The `room` of `/ws/chat`; the caller refuses the handshake with 403 on error."""
    return _room(values, 403)


def poll_room(values: Sequence[str]) -> str:
    """The `room` of `GET`/`POST /poll` (the rooms of `/ws/chat`); 400 on error."""
    return _room(values, 400)


@dataclass(frozen=True)
class PollParams:
    room: str
    timeout_ms: int


def poll_params(room_values: Sequence[str], timeout_values: Sequence[str]) -> PollParams:
    """`GET /poll?room=R&timeout_ms=N`: the room first, then the timeout."""
    room = poll_room(room_values)
    timeout_ms = int_param("timeout_ms", timeout_values, POLL_TIMEOUT_MS_MIN, POLL_TIMEOUT_MS_MAX)
    return PollParams(room=room, timeout_ms=timeout_ms)


def poll_document(document: Any) -> str:
    """Validate the `POST /poll` document `{"text": str}`; return the text."""
    if not isinstance(document, dict):
        raise _invalid_body("body must be a JSON object")
    for key in document:
        if key not in POLL_FIELDS:
            raise _invalid_body(f"unknown field {_shown(key)}", key)
    if "text" not in document:
        raise _invalid_body("text is required", "text")
    text = document["text"]
    if not isinstance(text, str) or not 1 <= len(text) <= CHAT_TEXT_MAX_CHARS:
        raise _invalid_body(
            f"text must be a string of 1 to {CHAT_TEXT_MAX_CHARS} characters", "text"
        )
    return text


def poll_text(content_type: str | None, body: bytes) -> str:
    """Full check of the `POST /poll` body, in the order of `echo_body`: 415, 413, 400, 422."""
    check_json_content_type(content_type)
    check_body_size(len(body))
    return poll_document(parse_json_body(body))
