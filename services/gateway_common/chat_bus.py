"""Cross-worker broadcast for `/ws/chat`, without an external broker.

Why: Uvicorn runs several worker processes behind one listening socket and nginx cannot
choose the worker, so two members of one room usually sit in different processes. Each
worker binds a unix datagram socket `CHAT_BUS_DIR/chat-<pid>.sock`; publishing sends the
message to every `chat-*.sock` in the directory, the publisher's own included, so local
and remote members are served by one delivery path. Datagrams keep message boundaries
and need no connection management; sockets of dead workers refuse the send
(ECONNREFUSED) and are removed then.

Delivery is best effort, like the chat itself: a member whose queue is full (a slow
client) misses messages rather than stalling the room. Without `CHAT_BUS_DIR` (unit
tests) the bus delivers in-process only.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
MEMBER_QUEUE_SIZE = 256
SOCKET_GLOB = "chat-*.sock"
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the trailing NUL
_RECEIVE_BUFFER_BYTES = MAX_MESSAGE_BYTES  # publishers keep to it; longer would be cut


class MessageTooLarge(ValueError):
    """The encoded message exceeds `MAX_MESSAGE_BYTES`."""


@dataclass(eq=False)
class Member:
    """One local socket in one room; its sender task drains `queue`."""

    room: str
    queue: asyncio.Queue[str] = field(
        default_factory=lambda: asyncio.Queue(maxsize=MEMBER_QUEUE_SIZE)
    )


class ChatBus:
    """Rooms of local members, plus fan-out to the other workers' buses."""

    def __init__(self, directory: Path | None, socket_name: str | None = None) -> None:
        self.directory = directory
        self.socket_name = socket_name or f"chat-{os.getpid()}.sock"
        self._rooms: dict[str, set[Member]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receiver: socket.socket | None = None
        self._sender: socket.socket | None = None

    @property
    def socket_path(self) -> Path | None:
        return None if self.directory is None else self.directory / self.socket_name

    async def start(self) -> None:
        path = self.socket_path
        if path is None:
            logger.debug("CHAT_BUS_DIR unset: chat is delivered within this process only")
            return
        if len(os.fsencode(path)) > _UNIX_PATH_MAX:
            raise RuntimeError(f"chat bus socket path is too long for a unix socket: {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        # A plain socket watched with add_reader: uvloop's create_datagram_endpoint only
        # takes (host, port) addresses, add_reader works on both event loops.
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.setblocking(False)
        receiver.bind(str(path))
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(receiver.fileno(), self._drain_receiver)
        self._receiver = receiver
        # A separate unbound socket for sending, so each send's error names its target.
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        logger.info("chat bus listening", extra={"fields": {"socket": str(path)}})

    async def stop(self) -> None:
        if self._receiver is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._receiver.fileno())
            self._receiver.close()
            self._receiver = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        path = self.socket_path
        if path is not None:
            path.unlink(missing_ok=True)

    def _drain_receiver(self) -> None:
        """Read every queued datagram (called by the event loop when the socket is readable)."""
        assert self._receiver is not None
        while True:
            try:
                data = self._receiver.recv(_RECEIVE_BUFFER_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("chat bus receive error: %s", exc)
                return
            self.deliver_local(data)

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

    def publish(self, message: dict[str, Any]) -> None:
        """Send `message` (it must carry `room`) to every member of its room in every worker."""
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(data) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(f"chat message is {len(data)} bytes, max {MAX_MESSAGE_BYTES}")
        if self._sender is None or self.directory is None:
            self.deliver_local(data)
            return
        for peer in sorted(self.directory.glob(SOCKET_GLOB)):
            self._send_to(peer, data)

    def _send_to(self, peer: Path, data: bytes) -> None:
        assert self._sender is not None
        try:
            self._sender.sendto(data, str(peer))
        except ConnectionRefusedError:
            # Nobody is bound to it any more: a worker that died without cleaning up.
            logger.info("removing stale chat socket", extra={"fields": {"socket": str(peer)}})
            peer.unlink(missing_ok=True)
        except FileNotFoundError:
            pass  # removed between glob and send: that worker stopped
        except BlockingIOError:
            logger.warning("chat peer is not keeping up, message dropped for %s", peer.name)
        except OSError as exc:
            if exc.errno != errno.ENOTSOCK:
                logger.warning("chat send to %s failed: %s", peer.name, exc)

    def deliver_local(self, data: bytes) -> None:
        """Queue one encoded message for every local member of its room."""
        try:
            room = json.loads(data)["room"]
            text = data.decode("utf-8")
        except (ValueError, KeyError, TypeError):
            logger.warning("chat bus dropped a malformed datagram")
            return
        for member in tuple(self._rooms.get(room, ())):
            try:
                member.queue.put_nowait(text)
            except asyncio.QueueFull:
                logger.warning(
                    "chat member queue full, message dropped", extra={"fields": {"room": room}}
                )
