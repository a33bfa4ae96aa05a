"""One worker process: Tornado's HTTPServer on the listening sockets its launcher passed down.

`python -m tornado_app.worker FD [FD ...]` is started by `tornado_app.serve`, never by hand: the
file descriptors are the launcher's listening sockets, shared by every worker (one accept queue,
as Uvicorn's and Gunicorn's workers share theirs). `Worker` also runs inside a test's event loop.

Shutdown (SIGTERM or SIGINT, or the launcher gone): stop accepting, close open WebSockets with
1012, let requests in flight finish (their connections close after the answer), and close what
is left once `DRAIN_S` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.config
import os
import signal
import socket
import sys
import time

from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback

from gateway_common import metrics
from gateway_common.chat_bus import ChatBus
from gateway_common.logging import log_config_dict
from gateway_common.settings import ConfigError
from tornado_app.app import make_app
from tornado_app.lifecycle import CLOSE_MARGIN_S, DRAIN_S, Lifecycle
from tornado_app.settings import INTERFACE, TornadoSettings, load_tornado_settings

# A body over the contract's bound is read and dropped up to this size, then answered 413 (the
# client reads its answer, and the connection stays usable). One announced larger than this is
# refused by Tornado itself: a bare 400 and the connection closed ("Content-Length too long").
DRAIN_MAX_BODY_BYTES = 1024 * 1024
PARENT_CHECK_MS = 1000

logger = logging.getLogger("tornado_app.worker")


class Worker:
    """The app, its chat bus and its HTTP server, on the running event loop."""

    def __init__(self, settings: TornadoSettings, sockets: list[socket.socket]) -> None:
        self.settings = settings
        self.sockets = sockets
        self.lifecycle = Lifecycle()
        self.bus = ChatBus(settings.redis_url, on_state_change=self._broker_state)
        self.server: HTTPServer | None = None

    def _broker_state(self, up: bool) -> None:
        metrics.set_chat_broker_up(self.settings.service, INTERFACE, up)

    async def start(self) -> None:
        await self.bus.start()
        app = make_app(self.settings, self.bus, self.lifecycle)
        self.server = HTTPServer(
            app,
            idle_connection_timeout=self.settings.keepalive_s,
            max_body_size=DRAIN_MAX_BODY_BYTES,
        )
        self.server.add_sockets(self.sockets)

    async def stop(self, drain_s: float = DRAIN_S) -> bool:
        """Drain and stop; True when nothing was left to cut off."""
        assert self.server is not None
        deadline = time.monotonic() + drain_s
        self.server.stop()  # this process's copies of the listening sockets
        self.lifecycle.begin_drain()
        clean = await self.lifecycle.wait_idle(deadline)
        # Idle keep-alive connections, and whatever outlived the drain.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.close_all_connections(), CLOSE_MARGIN_S / 2)
        await self.bus.stop()
        return clean


async def serve(settings: TornadoSettings, sockets: list[socket.socket]) -> bool:
    """Serve until told to stop, then drain; True on a clean stop."""
    worker = Worker(settings, sockets)
    await worker.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    # An orphan (the launcher was killed) stops by itself instead of serving on unsupervised.
    launcher = os.getppid()
    watch = PeriodicCallback(
        lambda: stopping.set() if os.getppid() != launcher else None, PARENT_CHECK_MS
    )
    watch.start()
    logger.info("worker serving", extra={"fields": {"bind": str(settings.bind)}})
    await stopping.wait()
    watch.stop()
    logger.info("worker stopping", extra={"fields": {"in_flight": worker.lifecycle.in_flight}})
    clean = await worker.stop()
    logger.info("worker stopped", extra={"fields": {"clean": clean}})
    return clean


def main(argv: list[str]) -> int:
    try:
        settings = load_tornado_settings()
        fds = [int(arg) for arg in argv]
        if not fds:
            raise ConfigError("no listening socket given (usage: tornado_app.worker FD [FD ...])")
    except (ConfigError, ValueError) as exc:
        print(f"tornado_app.worker: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(log_config_dict(settings.service, settings.log_level))
    sockets = [socket.socket(fileno=fd) for fd in fds]
    for sock in sockets:
        sock.setblocking(False)
    asyncio.run(serve(settings, sockets))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
