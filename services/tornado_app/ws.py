"""WebSocket routes: `/ws/echo` and `/ws/chat` (rooms over Redis pub/sub, `ChatBus`).

They behave as the FastAPI service's: the same close codes, the same chat documents. The message
size bound is checked here, on a message read to its end, so the 1009 close frame reaches the
client (Tornado's own limit, set higher, drops the connection with the message unread).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import uuid
from typing import Any

from tornado.websocket import WebSocketClosedError, WebSocketHandler

from gateway_common import limits, metrics, validation
from gateway_common.chat_bus import BROKER_LOST, BrokerUnavailable, Member, MessageTooLarge
from gateway_common.logging import log_request
from tornado_app.base import AppContext, ContractHandler

HOSTNAME = socket.gethostname()

# WebSocket close codes (RFC 6455).
WS_UNSUPPORTED_DATA = 1003
WS_MESSAGE_TOO_BIG = 1009
WS_TRY_AGAIN_LATER = 1013
BROKER_UNAVAILABLE_REASON = "chat broker unavailable"


class SocketHandler(WebSocketHandler, ContractHandler):
    """Connection gauge, message counters, and one log line per WebSocket session.

    The logged status is the handshake's: 101 accepted (logged when the session ends), else
    the refusal's (403 for a bad chat room).
    """

    def initialize(self, ctx: AppContext, route: str = metrics.UNMATCHED_ROUTE) -> None:
        super().initialize(ctx=ctx, route=route)
        identity = ctx.identity
        self.labels = (identity.service, identity.interface, route)
        self._started = time.perf_counter()
        self._opened = False

    def check_origin(self, origin: str) -> bool:
        # As the FastAPI service: no cookie or credential rides on these sockets, so a page of
        # another origin gains nothing by opening one.
        return True

    def open(self, *args: str, **kwargs: str) -> None:
        self._opened = True
        metrics.websocket_opened(*self.labels)
        self.ctx.lifecycle.socket_opened(self)  # closes it at once when shutting down

    @property
    def closed(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    def received(self) -> None:
        metrics.websocket_message(*self.labels, "in")

    async def send(self, message: str | bytes) -> bool:
        """Send one message (waiting while the client is slow to read); False once closed."""
        try:
            await self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            return False
        metrics.websocket_message(*self.labels, "out")
        return True

    def on_close(self) -> None:
        if self._opened:
            metrics.websocket_closed(*self.labels)
            self.ctx.lifecycle.socket_closed(self)
            self._log_session(101)

    def on_finish(self) -> None:
        # Called when the handshake's answer is sent: 101 (logged at on_close) or a refusal.
        status = self.get_status()
        if status != 101:
            self._log_session(status)

    def _log_session(self, status: int) -> None:
        log_request(
            service=self.ctx.identity.service,
            request_id=self.request_id,
            method="GET",
            path=self.request.path,
            route=self.route,
            status=status,
            duration_s=time.perf_counter() - self._started,
            level=logging.INFO,  # one line per connection, not per message
        )


class EchoSocket(SocketHandler):
    """Text back as text, binary back as binary."""

    async def on_message(self, message: str | bytes) -> None:
        self.received()
        if too_big(message):
            self.close(WS_MESSAGE_TOO_BIG, "message too big")
            return
        await self.send(message)


def too_big(message: str | bytes) -> bool:
    size = len(message.encode()) if isinstance(message, str) else len(message)
    return size > limits.WS_MAX_MESSAGE_BYTES


class ChatSocket(SocketHandler):
    """One member of a room; each text message goes to every member in every worker."""

    def initialize(self, ctx: AppContext, route: str = metrics.UNMATCHED_ROUTE) -> None:
        super().initialize(ctx, route)
        self.room = ""
        self.member: Member | None = None
        self.member_id = uuid.uuid4().hex[:12]
        self.sender: asyncio.Task[None] | None = None

    def prepare(self) -> None:
        # A bad room refuses the handshake: 403 with the contract's error body.
        self.room = validation.chat_room(self.query_values("room"))

    async def open(self, *args: str, **kwargs: str) -> None:
        super().open()
        if self.closed:
            return  # the worker is shutting down
        bus = self.ctx.bus
        # Joined before the check, with no await in between: a broker loss is either seen
        # here or delivered to the member's queue, never missed.
        member = bus.join(self.room)
        if not bus.connected:
            bus.leave(member)
            self.close(WS_TRY_AGAIN_LATER, BROKER_UNAVAILABLE_REASON)
            return
        self.member = member
        # `host` tells which replica holds the socket (Docker mode, SCALE > 1).
        joined = {"type": "joined", "room": self.room, "id": self.member_id, "host": HOSTNAME}
        if await self.send(json.dumps(joined)) and not self.closed:
            self.sender = asyncio.create_task(self._forward_room_messages(member))

    async def _forward_room_messages(self, member: Member) -> None:
        """Send the room's messages to the client; close the socket when the broker is lost."""
        while True:
            text = await member.queue.get()
            if text is BROKER_LOST:
                self.close(WS_TRY_AGAIN_LATER, BROKER_UNAVAILABLE_REASON)
                return
            if not await self.send(text):
                return

    async def on_message(self, message: str | bytes) -> None:
        self.received()
        if self.member is None or self.closed:
            return  # refused at open, or closing: nothing more is published
        if too_big(message):
            self.close(WS_MESSAGE_TOO_BIG, "message too big")
            return
        if isinstance(message, bytes):
            self.close(WS_UNSUPPORTED_DATA)
            return
        envelope: dict[str, Any] = {
            "type": "message",
            "room": self.room,
            "from": self.member_id,
            "text": message,
            "sent_at": time.time(),
        }
        try:
            await self.ctx.bus.publish(envelope)
        except MessageTooLarge:
            self.close(WS_MESSAGE_TOO_BIG)
        except BrokerUnavailable:
            self.close(WS_TRY_AGAIN_LATER, BROKER_UNAVAILABLE_REASON)

    def on_close(self) -> None:
        if self.member is not None:
            self.ctx.bus.leave(self.member)
        if self.sender is not None:
            self.sender.cancel()
        super().on_close()
