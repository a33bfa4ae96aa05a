"""Launcher of the FastAPI service on Daphne: `python -m fastapi_app.daphne_serve`.

Daphne serves from one process: Twisted's reactor on an asyncio loop, the app in the same
process and loop. More capacity is more replicas, not workers (ASGI_WORKERS must be 1). This
process also serves the metrics (gateway_common.launch), its own only.

Daphne lacks two things the other servers do, and this launcher adds them:
- the ASGI lifespan (the chat bus starts there): run around the server (fastapi_app.lifespan),
  before it listens and after it has drained;
- a graceful stop: Daphne cancels every application when its reactor stops. On SIGTERM or
  SIGINT the launcher stops listening, closes idle keep-alive connections, closes open
  WebSockets with 1012 (service restart, as Uvicorn does), lets the requests in flight finish
  for up to GRACEFUL_SHUTDOWN_S, runs the lifespan shutdown and only then stops the reactor.
"""

from __future__ import annotations

# daphne.server installs Twisted's asyncio reactor: it must come before anything imports
# twisted.internet.reactor.
import daphne.server  # isort: skip

import asyncio
import logging
import signal
import sys
from typing import Any

from daphne.ws_protocol import WebSocketProtocol
from starlette.types import ASGIApp
from twisted.internet import reactor
from twisted.web.http import HTTPChannel

from fastapi_app import proxied
from fastapi_app.lifespan import Lifespan
from fastapi_app.settings import INTERFACE, AsgiSettings, load_asgi_settings
from gateway_common import launch
from gateway_common.limits import (
    GRACEFUL_SHUTDOWN_S,
    LISTEN_BACKLOG,
    WS_MAX_MESSAGE_BYTES,
    WS_PING_INTERVAL_S,
    WS_PING_TIMEOUT_S,
)
from gateway_common.settings import ConfigError

LAUNCHER = "fastapi_app.daphne_serve"
WS_SERVICE_RESTART = 1012
DRAIN_POLL_S = 0.1

logger = logging.getLogger(LAUNCHER)


def endpoint(settings: AsgiSettings) -> str:
    """The Twisted endpoint Daphne listens on (its own syntax: colons in IPv6 escaped)."""
    host = settings.bind.host.replace(":", r"\:")
    return f"tcp:port={settings.bind.port}:interface={host}:backlog={LISTEN_BACKLOG}"


class DaphneServer(daphne.server.Server):
    """Daphne's server, with an idle keep-alive timeout and its listening ports kept (so that
    a graceful stop can close them)."""

    def __init__(self, *args: Any, keepalive_s: int, **kwargs: Any) -> None:
        super().__init__(*args, ready_callable=self._ready, **kwargs)
        self.keepalive_s = keepalive_s
        self.ports: list[Any] = []

    def _ready(self) -> None:
        """Called by `run` once its factories exist, before the reactor runs."""
        # Twisted's idle timeout of an HTTP connection (12 h by default; off while a request
        # runs): Uvicorn's timeout_keep_alive. Daphne has no setting for it.
        self.http_factory.timeOut = self.keepalive_s
        self.ws_factory.protocol = ContractWebSocketProtocol
        # A message over the limit: a 1009 close frame, not a dropped connection.
        self.ws_factory.setProtocolOptions(failByDrop=False)

    def listen_success(self, port: Any) -> None:
        self.ports.append(port)
        super().listen_success(port)


class ContractWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol, sending the close frame the app asks for.

    Daphne closes through autobahn's `sendClose`, which refuses the codes the contract uses
    (1003, 1009, 1012, 1013: it lets an application send only 1000 and 3000-4999), and it drops
    the reason. The frame goes out as asked instead.
    """

    def handle_reply(self, message: dict[str, Any]) -> None:
        if message.get("type") == "websocket.close" and self.state != self.STATE_CONNECTING:
            self.serverClose(message.get("code"), message.get("reason") or "")
        else:
            super().handle_reply(message)

    def serverClose(self, code: int | None = None, reason: str = "") -> None:
        self.sendCloseFrame(code=1000 if code is None else code, reasonUtf8=reason.encode())


def daphne_server(settings: AsgiSettings, app: ASGIApp) -> DaphneServer:
    """Daphne's settings: Uvicorn's equivalents (fastapi_app.serve) where Daphne has one."""
    return DaphneServer(
        application=app,
        endpoints=[endpoint(settings)],
        signal_handlers=False,  # the launcher's own: a graceful stop (module doc)
        action_logger=None,  # no access log: the app logs every request as JSON
        ping_interval=WS_PING_INTERVAL_S,
        ping_timeout=WS_PING_TIMEOUT_S,
        websocket_timeout=-1,  # no cap on a WebSocket's life (Daphne's default: 24 h)
        websocket_max_message_size=WS_MAX_MESSAGE_BYTES,
        websocket_max_frame_size=WS_MAX_MESSAGE_BYTES,
        root_path=settings.root_path,
        keepalive_s=settings.keepalive_s,
        # X-Forwarded-* are read by fastapi_app.proxied: Daphne's own reading trusts any peer.
        proxy_forwarded_address_header=None,
        verbosity=1 if settings.log_level != "debug" else 2,
    )


class GracefulStop:
    """Drains the server on SIGTERM/SIGINT, then stops the reactor (module doc)."""

    def __init__(self, server: DaphneServer, lifespan: Lifespan) -> None:
        self._server = server
        self._lifespan = lifespan
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        if self._task is not None:
            return
        logger.info("stopping: draining requests in flight")
        for port in self._server.ports:
            port.stopListening()
        for reader in reactor.getReaders():
            # A connection's protocol is Twisted's ALPN proxy; `_channel` the HTTP/1.1 channel.
            channel = getattr(getattr(reader, "protocol", None), "_channel", None)
            if isinstance(channel, HTTPChannel):
                if channel.requests:
                    channel.persistent = False  # close once the response in flight is sent
                else:
                    channel.transport.loseConnection()  # idle keep-alive
        for protocol in list(self._server.connections):
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                protocol.serverClose(WS_SERVICE_RESTART)
        self._task = asyncio.ensure_future(self._drain_and_stop())

    def _busy(self) -> int:
        """Application instances still running (HTTP requests, WebSocket handlers)."""
        return sum(
            1
            for details in self._server.connections.values()
            if (instance := details.get("application_instance")) is not None and not instance.done()
        )

    async def _drain_and_stop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GRACEFUL_SHUTDOWN_S
        while self._busy() and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        if self._busy():
            logger.warning(
                "grace period over: cancelling requests in flight",
                extra={"fields": {"requests": self._busy()}},
            )
        try:
            await self._lifespan.shutdown()
        finally:
            reactor.stop()


def load_daphne_settings() -> AsgiSettings:
    """The ASGI settings, with the one worker process Daphne can run."""
    settings = load_asgi_settings()
    if settings.workers > 1:
        raise ConfigError(
            f"ASGI_WORKERS must be at most 1 for {settings.server}, got {settings.workers} "
            "(run more replicas instead)"
        )
    return settings


def main() -> int:
    started = launch.prepare(LAUNCHER, load_daphne_settings, INTERFACE)
    settings = started.settings
    app = proxied.create_app(settings)
    loop = daphne.server.twisted_loop  # the reactor's loop: the app runs on it
    asyncio.set_event_loop(loop)
    lifespan = Lifespan(app)
    loop.run_until_complete(lifespan.startup())

    server = daphne_server(settings, app)
    stop = GracefulStop(server, lifespan)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.begin)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
