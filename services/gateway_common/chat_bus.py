"""Cross-worker and cross-replica broadcast for `/ws/chat`, over Redis pub/sub.

Why: Uvicorn runs several worker processes (and Docker mode several replicas) and nginx picks
the process, so two members of one room usually sit in different processes. Each worker keeps
ONE pattern subscription, `chat:*`, and fans what arrives out to its local members; publishing
goes to channel `chat:<room>`, the publisher's own worker included, so local and remote members
are served by one delivery path.

Delivery is best effort, like Redis pub/sub itself: a member whose queue is full (a slow
client) misses messages rather than stalling the room, and what is published while a worker is
disconnected is not replayed.

Broker loss: the subscriber notices (the connection closes, or a health-check PING fails),
marks the bus down, hands every local member a `BROKER_LOST` marker (the app closes those
sockets with 1013 "try again later"), and reconnects with bounded exponential backoff. Until it
is back, `connected` is False and publishing raises `BrokerUnavailable`. Nothing else in the
service depends on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
MEMBER_QUEUE_SIZE = 256
CHANNEL_PREFIX = "chat:"
CHANNEL_PATTERN = CHANNEL_PREFIX + "*"
# A stalled broker fails a connect or a publish within this bound instead of holding a socket.
BROKER_TIMEOUT_S = 2.0
# The subscriber wakes up this often and PINGs an idle connection, so a broker that vanished
# without closing the connection is noticed too.
HEALTH_CHECK_S = 5.0
# Reconnect backoff: quick first retries, then at most this long between attempts.
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 2.0
# `stop` cancels the subscriber again this often until it ends: on Python 3.11 a cancellation
# that lands as a write completes is lost in asyncio.wait_for (redis-py's writes; CPython
# gh-86296, fixed in 3.12), and the subscriber would run on, holding the lifespan shutdown.
STOP_RECANCEL_S = 0.1

# Queued for a member when the broker is lost: its socket must be closed.
BROKER_LOST: Final = None

MESSAGE_TYPE = "message"
MEMBER_ID_HEX_DIGITS = 12

StateListener = Callable[[bool], None]


class MessageTooLarge(ValueError):
    """The encoded message exceeds `MAX_MESSAGE_BYTES`."""


class BrokerUnavailable(ConnectionError):
    """The chat broker cannot be reached now; the client should try again later."""


def new_member_id() -> str:
    """A fresh sender id: one per chat socket, one per message published over HTTP."""
    return uuid.uuid4().hex[:MEMBER_ID_HEX_DIGITS]


def encode(document: dict[str, Any]) -> bytes:
    """`document` as published on a room's channel (compact UTF-8 JSON), at most
    `MAX_MESSAGE_BYTES`, else `MessageTooLarge`."""
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"chat message is {len(data)} bytes, max {MAX_MESSAGE_BYTES}")
    return data


@dataclass(frozen=True)
class ChatMessage:
    """One chat message, as every member of its room receives it:
    `{"type":"message","room":R,"from":id,"text":...,"sent_at":unix_seconds}`."""

    room: str
    sender: str  # "from" in the document
    text: str
    sent_at: float

    @classmethod
    def new(cls, room: str, sender: str, text: str) -> ChatMessage:
        return cls(room=room, sender=sender, text=text, sent_at=time.time())

    def document(self) -> dict[str, Any]:
        return {
            "type": MESSAGE_TYPE,
            "room": self.room,
            "from": self.sender,
            "text": self.text,
            "sent_at": self.sent_at,
        }

    def encode(self) -> bytes:
        return encode(self.document())

    @classmethod
    def decode(cls, data: bytes | str) -> ChatMessage | None:
        """The chat message a room's channel carried, or None for anything else on it (the
        channel is open to any Redis client, so nothing is assumed about what arrives)."""
        try:
            document = json.loads(data)
        except ValueError:  # UnicodeDecodeError included
            return None
        if not isinstance(document, dict) or document.get("type") != MESSAGE_TYPE:
            return None
        room, sender, text = document.get("room"), document.get("from"), document.get("text")
        sent_at = document.get("sent_at")
        if not all(isinstance(value, str) for value in (room, sender, text)):
            return None
        if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
            return None
        return cls(room=room, sender=sender, text=text, sent_at=float(sent_at))


@dataclass(eq=False)
class Member:
    """One local socket in one room; its sender task drains `queue` (texts, or `BROKER_LOST`)."""

    room: str
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=MEMBER_QUEUE_SIZE)
    )


class ChatBus:
    """Rooms of local members, fed by one Redis pattern subscription per worker process."""

    def __init__(self, url: str, *, on_state_change: StateListener | None = None) -> None:
        self.url = url
        self._on_state_change = on_state_change
        self._rooms: dict[str, set[Member]] = {}
        self._connected = False
        self._up: asyncio.Event | None = None
        self._client: Redis | None = None
        self._subscriber: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while this worker is subscribed, i.e. chat messages reach its members."""
        return self._connected

    async def start(self) -> None:
        """Start subscribing in the background; never fails because the broker is down."""
        self._up = asyncio.Event()
        self._client = Redis.from_url(
            self.url,
            socket_connect_timeout=BROKER_TIMEOUT_S,
            socket_timeout=BROKER_TIMEOUT_S,
            health_check_interval=HEALTH_CHECK_S,
            # Retries are the subscriber's job (with backoff); a publish fails at once.
            retry=Retry(NoBackoff(), 0),
        )
        self._set_connected(False)
        self._subscriber = asyncio.create_task(self._subscribe_forever(), name="chat-subscriber")

    async def stop(self) -> None:
        if self._subscriber is not None:
            while not self._subscriber.done():
                self._subscriber.cancel()
                await asyncio.wait({self._subscriber}, timeout=STOP_RECANCEL_S)
            self._subscriber = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._connected = False

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until subscribed (or `timeout_s` passes); returns `connected`."""
        if self._up is not None and not self._connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), timeout_s)
        return self._connected

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        if self._up is not None:
            if connected:
                self._up.set()
            else:
                self._up.clear()
        if self._on_state_change is not None:
            self._on_state_change(connected)

    async def _subscribe_forever(self) -> None:
        assert self._client is not None
        delay = RECONNECT_MIN_S
        failures = 0
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(CHANNEL_PATTERN)
                self._set_connected(True)
                logger.info(
                    "chat broker subscribed",
                    extra={"fields": {"pattern": CHANNEL_PATTERN, "failed_attempts": failures}},
                )
                delay, failures = RECONNECT_MIN_S, 0
                while True:
                    message = await pubsub.get_message(timeout=HEALTH_CHECK_S)
                    if message is not None:
                        self._deliver(message)
            except (RedisError, OSError) as exc:
                failures += 1
                if self._connected:
                    self._set_connected(False)
                    self._notify_lost()
                    logger.warning("chat broker lost: %s", exc)
                elif failures == 1:
                    logger.warning("chat broker unavailable: %s", exc)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _deliver(self, message: dict[str, Any]) -> None:
        try:
            channel = message["channel"].decode("utf-8")
            text = message["data"].decode("utf-8")
        except (KeyError, AttributeError, UnicodeDecodeError):
            logger.warning("chat bus dropped a malformed message")
            return
        if channel.startswith(CHANNEL_PREFIX):
            self.deliver_local(channel.removeprefix(CHANNEL_PREFIX), text)

    def _notify_lost(self) -> None:
        for members in self._rooms.values():
            for member in members:
                if member.queue.full():
                    member.queue.get_nowait()  # the oldest message gives way to the marker
                member.queue.put_nowait(BROKER_LOST)

    def join(self, room: str) -> Member:
        member = Member(room=room)
        self._rooms.setdefault(room, set()).add(member)
        return member

    def leave(self, member: Member) -> None:
        members = self._rooms.get(member.room)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self._rooms[member.room]

    def members(self, room: str) -> int:
        return len(self._rooms.get(room, ()))

    async def publish(self, message: dict[str, Any]) -> None:
        """Send `message` (it must carry `room`) to every member of its room in every worker."""
        data = encode(message)
        if self._client is None or not self._connected:
            raise BrokerUnavailable("chat broker unavailable")
        try:
            await self._client.publish(CHANNEL_PREFIX + message["room"], data)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable("chat broker unavailable") from exc

    def deliver_local(self, room: str, text: str) -> None:
        """Queue one message for every local member of `room`."""
        for member in tuple(self._rooms.get(room, ())):
            try:
                member.queue.put_nowait(text)
            except asyncio.QueueFull:
                logger.warning(
                    "chat member queue full, message dropped", extra={"fields": {"room": room}}
                )
