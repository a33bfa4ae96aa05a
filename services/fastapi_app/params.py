"""Query parameters as FastAPI dependencies: handlers receive validated values.

Each parameter is declared as an optional string, so OpenAPI documents it; the dependency then
reads every occurrence of it (a repeated parameter is refused, as the Flask service refuses it)
and checks it with `gateway_common.validation`. A bad value raises that module's `ApiError`,
which the app's handler renders in the contract's error shape (400; 403 for a chat handshake).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from starlette.requests import HTTPConnection

from gateway_common import validation


def _io_ms(
    connection: HTTPConnection,
    ms: Annotated[
        str | None,
        Query(
            description=f"milliseconds to wait, {validation.IO_MS_MIN} to {validation.IO_MS_MAX}"
        ),
    ] = None,
) -> int:
    return validation.io_ms(connection.query_params.getlist("ms"))


def _cpu_n(
    connection: HTTPConnection,
    n: Annotated[
        str | None,
        Query(description=f"iterations, {validation.CPU_N_MIN} to {validation.CPU_N_MAX}"),
    ] = None,
) -> int:
    return validation.cpu_n(connection.query_params.getlist("n"))


def _stream(
    connection: HTTPConnection,
    events: Annotated[
        str | None,
        Query(
            description=f"events, {validation.STREAM_EVENTS_MIN} to {validation.STREAM_EVENTS_MAX}"
        ),
    ] = None,
    interval_ms: Annotated[
        str | None,
        Query(
            description=f"ms between events, {validation.STREAM_INTERVAL_MS_MIN} to "
            f"{validation.STREAM_INTERVAL_MS_MAX}; "
            f"events x interval <= {validation.STREAM_TOTAL_MS_MAX}"
        ),
    ] = None,
) -> validation.StreamParams:
    query = connection.query_params
    return validation.stream_params(query.getlist("events"), query.getlist("interval_ms"))


def _chat_room(
    connection: HTTPConnection,
    room: Annotated[
        str | None, Query(description=f"chat room, {validation.CHAT_ROOM_PATTERN}")
    ] = None,
) -> str:
    return validation.chat_room(connection.query_params.getlist("room"))


_POLL_ROOM_DESCRIPTION = f"chat room, {validation.CHAT_ROOM_PATTERN}"


def _poll_query(
    connection: HTTPConnection,
    room: Annotated[str | None, Query(description=_POLL_ROOM_DESCRIPTION)] = None,
    timeout_ms: Annotated[
        str | None,
        Query(
            description=f"longest wait in milliseconds, {validation.POLL_TIMEOUT_MS_MIN} to "
            f"{validation.POLL_TIMEOUT_MS_MAX}"
        ),
    ] = None,
) -> validation.PollParams:
    query = connection.query_params
    return validation.poll_params(query.getlist("room"), query.getlist("timeout_ms"))


def _poll_room(
    connection: HTTPConnection,
    room: Annotated[str | None, Query(description=_POLL_ROOM_DESCRIPTION)] = None,
) -> str:
    return validation.poll_room(connection.query_params.getlist("room"))


IoMs = Annotated[int, Depends(_io_ms)]
CpuN = Annotated[int, Depends(_cpu_n)]
Stream = Annotated[validation.StreamParams, Depends(_stream)]
ChatRoom = Annotated[str, Depends(_chat_room)]
PollQuery = Annotated[validation.PollParams, Depends(_poll_query)]
PollRoom = Annotated[str, Depends(_poll_room)]
