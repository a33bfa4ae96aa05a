"""Shared validators: typed values or one ApiError with the contract's code and message."""

from __future__ import annotations

import pytest

from gateway_common import validation
from gateway_common.chat_bus import MAX_MESSAGE_BYTES, ChatMessage, new_member_id
from gateway_common.errors import ApiError, error_body


def raises(call, *args) -> ApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


def test_int_param_ok() -> None:
    assert validation.io_ms(["0"]) == 0
    assert validation.io_ms(["10000"]) == 10000
    assert validation.io_ms(["+5"]) == 5
    assert validation.cpu_n(["5000000"]) == 5_000_000


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "ms is required"),
        (["1", "2"], "ms must be given once"),
        (["abc"], "ms must be an integer between 0 and 10000, got 'abc'"),
        (["10001"], "ms must be an integer between 0 and 10000, got '10001'"),
        (["1e3"], "ms must be an integer between 0 and 10000, got '1e3'"),
        ([" 5"], "ms must be an integer between 0 and 10000, got ' 5'"),
        (["9" * 50], f"ms must be an integer between 0 and 10000, got '{'9' * 40}...'"),
    ],
)
def test_int_param_errors(values: list[str], message: str) -> None:
    error = raises(validation.io_ms, values)
    assert (error.status, error.code, error.field, error.message) == (
        400,
        "invalid_parameter",
        "ms",
        message,
    )


def test_stream_params() -> None:
    assert validation.stream_params(["100"], ["600"]) == validation.StreamParams(100, 600)
    error = raises(validation.stream_params, ["100"], ["601"])
    assert error.field is None
    assert error.message == "events * interval_ms must be at most 60000, got 100 * 601 = 60100"


def test_echo_body_order_of_checks() -> None:
    # 415 before 413 before 400 before 422, the same in both services.
    assert raises(validation.echo_body, "text/plain", b"x" * 70000).status == 415
    assert raises(validation.echo_body, "application/json", b"x" * 70000).status == 413
    assert raises(validation.echo_body, "application/json", b"{").status == 400
    assert raises(validation.echo_body, "application/json", b"[]").status == 422


def test_echo_body_ok() -> None:
    document = validation.echo_body("Application/JSON; charset=utf-8", b'{"message":"m","tags":[]}')
    assert document == {"message": "m", "tags": []}


def test_echo_body_invalid_utf8_is_malformed() -> None:
    error = raises(validation.echo_body, "application/json", b'{"message":"\xff"}')
    assert error.code == "malformed_json"


@pytest.mark.parametrize("room", ["a", "Room_1-x", "x" * 32])
def test_chat_room_ok(room: str) -> None:
    assert validation.chat_room([room]) == room


@pytest.mark.parametrize("values", [[], [""], ["a b"], ["x" * 33], ["a", "b"], ["é"]])
def test_chat_room_refused(values: list[str]) -> None:
    error = raises(validation.chat_room, values)
    assert (error.status, error.code, error.field) == (403, "invalid_parameter", "room")


def test_error_body_shape() -> None:
    assert error_body(400, "invalid_parameter", "m", "ms") == {
        "error": {"status": 400, "code": "invalid_parameter", "field": "ms", "message": "m"}
    }
    assert error_body(404, "not_found", "m") == {
        "error": {"status": 404, "code": "not_found", "message": "m"}
    }


def test_poll_params() -> None:
    assert validation.poll_params(["lobby"], ["0"]) == validation.PollParams("lobby", 0)
    assert validation.poll_params(["a-b_C"], ["30000"]) == validation.PollParams("a-b_C", 30000)
    # The room is checked first, with 400 (not the chat handshake's 403).
    error = raises(validation.poll_params, ["bad room"], ["x"])
    assert (error.status, error.field) == (400, "room")
    assert error.message == "room must match ^[A-Za-z0-9_-]{1,32}$, got 'bad room'"
    error = raises(validation.poll_params, ["r"], ["30001"])
    assert (error.status, error.field) == (400, "timeout_ms")
    assert error.message == "timeout_ms must be an integer between 0 and 30000, got '30001'"
    assert raises(validation.poll_params, ["r", "s"], ["1"]).message.endswith("got repeated")
    assert raises(validation.chat_room, ["bad room"]).status == 403


def test_poll_text_order_of_checks() -> None:
    assert validation.poll_text("application/json", b'{"text":"hi"}') == "hi"
    assert raises(validation.poll_text, "text/plain", b"x" * 70000).status == 415
    assert raises(validation.poll_text, "application/json", b"x" * 70000).status == 413
    assert raises(validation.poll_text, "application/json", b'{"text":NaN}').status == 400
    assert raises(validation.poll_text, "application/json", b'{"text":""}').status == 422


def test_the_longest_poll_text_fits_a_chat_message() -> None:
    # The worst case for the encoded size: every character escaped as \u00XX.
    text = "\u0001" * validation.CHAT_TEXT_MAX_CHARS
    assert validation.poll_document({"text": text}) == text
    message = ChatMessage.new("r" * 32, new_member_id(), text)
    assert len(message.encode()) <= MAX_MESSAGE_BYTES
