"""Long polling on the chat's rooms: `GET /poll` waits for a room's next message, `POST /poll`
publishes one.

A room is the one `/ws/chat` serves: the same Redis channel (`chat:<room>`) and the same message
document (`chat_bus.ChatMessage`), so a poller and chat sockets hear each other. A wait hears
only what is published while it waits, like a chat socket (pub/sub keeps no history).

Two implementations of one contract, for the two kinds of server:

- sync (`wait_sync`, `publish_sync`), for WSGI servers: Gunicorn sync/gthread/gevent, uWSGI
  threads, Granian's blocking threads. Each wait subscribes to its room's channel on its own
  connection, from a pool per broker URL kept by this module, and blocks its thread (or
  greenlet, under gevent's monkey-patching) until a message comes or the time is up. A sync
  worker is held for the whole wait; that is what the route shows.
- async (`wait_async`, `publish_async`), for apps that run a `ChatBus` (one Redis subscription
  per worker process): a wait joins the bus as a member of the room, no connection of its own.

The HTTP layer (`answer_get_*`, `answer_post_*`) takes what the app checked with
`gateway_common.validation` (`poll_params`, `poll_room`), checks the body itself (bad input
raises `ApiError`, for the app's error handler) and returns a `PollAnswer` for everything else:
200 with the message, 204 at the timeout, 202 with what was published, 503
`chat_broker_unavailable` with `Retry-After` when Redis cannot be reached. An app only turns
that answer into its framework's response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from gateway_common import validation
from gateway_common.chat_bus import (
    BROKER_LOST,
    BROKER_TIMEOUT_S,
    CHANNEL_PREFIX,
    RECONNECT_MAX_S,
    BrokerUnavailable,
    ChatBus,
    ChatMessage,
    new_member_id,
)
from gateway_common.errors import error_body

logger = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"
# A long-poll answer is about one moment: no cache may keep it.
NO_STORE = {"Cache-Control": "no-store"}
PUBLISHED_STATUS = 202  # handed to the broker; delivery to members is best effort
BROKER_UNAVAILABLE_STATUS = 503
BROKER_UNAVAILABLE_CODE = "chat_broker_unavailable"
BROKER_UNAVAILABLE_MESSAGE = "chat broker unavailable, try again later"
# By then a chat bus has tried to reconnect at least once (its backoff tops out there).
RETRY_AFTER_S = math.ceil(RECONNECT_MAX_S)


@dataclass(frozen=True)
class PollAnswer:
    """What a `/poll` request is answered with, whatever the framework."""

    status: int
    body: bytes
    headers: Mapping[str, str]  # Content-Type when there is a body; Cache-Control; Retry-After

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")


def message_answer(message: ChatMessage | None) -> PollAnswer:
    """200 with the message document (the bytes chat sockets get), or 204 when none came."""
    if message is None:
        return PollAnswer(204, b"", dict(NO_STORE))
    return PollAnswer(200, message.encode(), {"Content-Type": JSON_MEDIA_TYPE, **NO_STORE})


def published_answer(message: ChatMessage) -> PollAnswer:
    """202 with the message document as it was published."""
    return PollAnswer(
        PUBLISHED_STATUS, message.encode(), {"Content-Type": JSON_MEDIA_TYPE, **NO_STORE}
    )


def broker_unavailable_answer() -> PollAnswer:
    body = error_body(
        BROKER_UNAVAILABLE_STATUS, BROKER_UNAVAILABLE_CODE, BROKER_UNAVAILABLE_MESSAGE
    )
    return PollAnswer(
        BROKER_UNAVAILABLE_STATUS,
        json.dumps(body, separators=(",", ":")).encode("utf-8"),
        {"Content-Type": JSON_MEDIA_TYPE, "Retry-After": str(RETRY_AFTER_S), **NO_STORE},
    )


def _broker_unavailable(exc: BrokerUnavailable) -> PollAnswer:
    logger.warning("poll: chat broker unavailable: %s", exc)
    return broker_unavailable_answer()


def _room_message(data: Any, room: str) -> ChatMessage | None:
    """The chat message `data` holds, if it is one of `room`'s (anything else is dropped)."""
    message = ChatMessage.decode(data) if isinstance(data, bytes | str) else None
    if message is None or message.room != room:
        logger.warning("poll dropped a malformed message", extra={"fields": {"room": room}})
        return None
    return message


# --------------------------------------------------------------------------- sync (WSGI)

# One client (one connection pool) per broker URL and process; created at first use, so in
# the worker (after the fork, after gevent's monkey-patching), never in a server's master.
_clients: dict[str, Redis] = {}


def _client(url: str) -> Redis:
    client = _clients.get(url)
    if client is None:
        new = Redis.from_url(
            url,
            socket_connect_timeout=BROKER_TIMEOUT_S,
            socket_timeout=BROKER_TIMEOUT_S,
            # Fail at once and answer 503; the client retries after Retry-After.
            retry=Retry(NoBackoff(), 0),
        )
        client = _clients.setdefault(url, new)  # a racing thread's client wins; both are idle
    return client


def wait_sync(url: str, room: str, timeout_ms: int) -> ChatMessage | None:
    """Block until `room`'s next message (returned) or `timeout_ms` (None).

    Raises `BrokerUnavailable` when Redis cannot be reached or is lost during the wait.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    pubsub = _client(url).pubsub()
    try:
        pubsub.subscribe(CHANNEL_PREFIX + room)
        # Redis's confirmation: from here on, whatever is published to the room reaches us.
        reply = pubsub.get_message(timeout=BROKER_TIMEOUT_S)
        if reply is None or reply["type"] != "subscribe":
            raise BrokerUnavailable("chat broker did not confirm the subscription")
        while True:
            remaining = deadline - time.monotonic()
            reply = pubsub.get_message(ignore_subscribe_messages=True, timeout=max(remaining, 0))
            if reply is not None:
                message = _room_message(reply.get("data"), room)
                if message is not None:
                    return message
            elif remaining <= 0:
                return None
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(f"chat broker unavailable: {exc}") from exc
    finally:
        with contextlib.suppress(RedisError, OSError):
            pubsub.close()  # unsubscribes by closing the connection


def publish_sync(url: str, room: str, text: str) -> ChatMessage:
    """Publish `text` to `room` (every poller and chat socket in it); returns the message.

    Raises `BrokerUnavailable` when Redis cannot be reached.
    """
    message = ChatMessage.new(room, new_member_id(), text)
    data = message.encode()  # validation.CHAT_TEXT_MAX_CHARS keeps it within the bound
    try:
        _client(url).publish(CHANNEL_PREFIX + room, data)
    except (RedisError, OSError) as exc:
        raise BrokerUnavailable(f"chat broker unavailable: {exc}") from exc
    return message


def answer_get_sync(url: str, params: validation.PollParams) -> PollAnswer:
    """`GET /poll?room=R&timeout_ms=N`, its query checked by `validation.poll_params`."""
    try:
        return message_answer(wait_sync(url, params.room, params.timeout_ms))
    except BrokerUnavailable as exc:
        return _broker_unavailable(exc)


def answer_post_sync(
    url: str, room: str, content_type: str | None, read_body: Callable[[], bytes]
) -> PollAnswer:
    """`POST /poll?room=R`, `room` checked by `validation.poll_room`. `read_body` is called
    once the media type passed (a size limit it enforces itself must raise the contract's 413);
    then 413, 400 and 422 in the order of `validation.poll_text`."""
    validation.check_json_content_type(content_type)
    text = validation.poll_text(content_type, read_body())
    try:
        return published_answer(publish_sync(url, room, text))
    except BrokerUnavailable as exc:
        return _broker_unavailable(exc)


# --------------------------------------------------------------------------- async (ChatBus)


async def wait_async(bus: ChatBus, room: str, timeout_ms: int) -> ChatMessage | None:
    """Wait for `room`'s next message (returned) or `timeout_ms` (None), as a bus member.

    Raises `BrokerUnavailable` when the bus is not subscribed, or loses the broker meanwhile.
    """
    # Joined before the check, with no await in between: a broker loss is either seen here or
    # delivered to the member's queue, never missed (as /ws/chat does).
    member = bus.join(room)
    try:
        if not bus.connected:
            raise BrokerUnavailable("chat broker unavailable")
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    text = await member.queue.get()
            except TimeoutError:
                return None
            if text is BROKER_LOST:
                raise BrokerUnavailable("chat broker lost during the wait")
            message = _room_message(text, room)
            if message is not None:
                return message
    finally:
        bus.leave(member)


async def publish_async(bus: ChatBus, room: str, text: str) -> ChatMessage:
    """Publish `text` to `room` through the bus; returns the message.

    Raises `BrokerUnavailable` when the bus is not subscribed or the publish fails.
    """
    message = ChatMessage.new(room, new_member_id(), text)
    await bus.publish(message.document())
    return message


async def answer_get_async(bus: ChatBus, params: validation.PollParams) -> PollAnswer:
    """`GET /poll?room=R&timeout_ms=N`, its query checked by `validation.poll_params`."""
    try:
        return message_answer(await wait_async(bus, params.room, params.timeout_ms))
    except BrokerUnavailable as exc:
        return _broker_unavailable(exc)


async def answer_post_async(
    bus: ChatBus,
    room: str,
    content_type: str | None,
    read_body: Callable[[], Awaitable[bytes]],
) -> PollAnswer:
    """`POST /poll?room=R`, as `answer_post_sync`; `read_body` is awaited."""
    validation.check_json_content_type(content_type)
    text = validation.poll_text(content_type, await read_body())
    try:
        return published_answer(await publish_async(bus, room, text))
    except BrokerUnavailable as exc:
        return _broker_unavailable(exc)
