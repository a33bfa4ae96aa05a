"""The Tornado service's worker, really serving on a free loopback port from a thread.

Tornado has no in-process test client like Flask's or Starlette's: the tests talk HTTP and
WebSocket to its own server. The worker runs on an event loop in a thread of the test process
(so its metrics land in the tests' multiprocess directory), exactly as `tornado_app.worker`
runs it in a worker process, minus the signal handling.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tornado.netutil import bind_sockets

from tornado_app.settings import TornadoSettings
from tornado_app.worker import Worker

HOST = "127.0.0.1"
CALL_TIMEOUT_S = 30.0  # a bound against hanging, not a speed requirement

T = TypeVar("T")


class TornadoServer:
    def __init__(self, settings: TornadoSettings) -> None:
        self.sockets = bind_sockets(0, HOST)
        self.port = self.sockets[0].getsockname()[1]
        self.worker = Worker(settings, self.sockets)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tornado-server")
        self.stopped = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def call(self, function: Callable[[], Awaitable[T]], timeout_s: float = CALL_TIMEOUT_S) -> T:
        """Run a coroutine function on the server's loop and return its result."""

        async def run() -> T:
            return await function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout_s)

    def start(self, broker_timeout_s: float) -> None:
        self._thread.start()
        self.call(self.worker.start)
        if not self.call(lambda: self.worker.bus.wait_connected(broker_timeout_s)):
            self.stop()
            raise RuntimeError("the chat bus did not connect to the test redis-server")

    def stop(self, drain_s: float = 5.0) -> bool:
        """Drain as on SIGTERM (bounded by `drain_s`); True when nothing was cut off."""
        if self.stopped:
            return True
        self.stopped = True
        try:
            return self.call(lambda: self.worker.stop(drain_s))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(CALL_TIMEOUT_S)
            self.loop.close()
