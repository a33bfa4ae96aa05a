"""What a worker's graceful shutdown needs to know: requests in flight and open WebSockets."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from gateway_common.limits import GRACEFUL_SHUTDOWN_S

# RFC 6455 1012 "service restart": the client may reconnect (to another worker or later).
WS_SERVICE_RESTART = 1012
SHUTDOWN_REASON = "server shutting down"
POLL_S = 0.02
# The launcher kills a worker GRACEFUL_SHUTDOWN_S after asking it to stop (as Uvicorn's
# timeout_graceful_shutdown); the worker stops waiting for requests a little earlier, to close
# what is left itself.
CLOSE_MARGIN_S = 2.0
DRAIN_S = GRACEFUL_SHUTDOWN_S - CLOSE_MARGIN_S


class Closable(Protocol):
    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Lifecycle:
    """Counts HTTP requests in flight and holds the open WebSockets of one worker.

    Once `draining`, responses carry `Connection: close` and their connection is closed after
    them (a proxy's idle keep-alive connection gets no further request), and open sockets are
    closed with 1012.
    """

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        self.sockets: set[Closable] = set()

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1

    def socket_opened(self, socket: Closable) -> None:
        if self.draining:
            socket.close(WS_SERVICE_RESTART, SHUTDOWN_REASON)
        else:
            self.sockets.add(socket)

    def socket_closed(self, socket: Closable) -> None:
        self.sockets.discard(socket)

    def begin_drain(self) -> None:
        self.draining = True
        for socket in tuple(self.sockets):
            socket.close(WS_SERVICE_RESTART, SHUTDOWN_REASON)

    async def wait_idle(self, deadline: float) -> bool:
        """Wait (until `deadline`, a `time.monotonic()` value) for no request or socket left."""
        while self.in_flight > 0 or self.sockets:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_S)
        return True
