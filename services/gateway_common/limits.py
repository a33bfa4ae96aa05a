"""Bounds shared by every server of a variant, and the descriptor budget stackctl's edge
arithmetic (stackctl.capacity) shares with them."""

from __future__ import annotations

import resource

#: Descriptors a process needs besides its sockets: log files, listeners, pipes, eventfds.
FD_RESERVE = 64
#: Listen queue of nginx's public listeners and of the app servers: a ramp of handshakes waits here
#: instead of being dropped (Linux caps it at net.core.somaxconn, 4096 by default).
LISTEN_BACKLOG = 4096
#: The largest WebSocket message (the contract: a bigger one closes the socket with 1009).
WS_MAX_MESSAGE_BYTES = 64 * 1024
#: What a server itself lets through, above the contract's bound, where the app enforces it:
#: Tornado and Gunicorn's ASGI worker, refusing a message mid-read, drop the connection before
#: their 1009 close frame reaches the client; the app, having read the message, closes cleanly.
WS_SERVER_MESSAGE_LIMIT_BYTES = 1024 * 1024
#: Servers ping idle WebSockets this often, and drop those whose pong is this late.
WS_PING_INTERVAL_S = 20
WS_PING_TIMEOUT_S = 20
#: On SIGTERM a server stops accepting and lets the requests in flight run this long.
GRACEFUL_SHUTDOWN_S = 30


def open_file_limit() -> int:
    """This process's soft limit on open files (what it can really use)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return hard if hard != resource.RLIM_INFINITY else 1 << 20
    return soft


def connection_limit() -> int:
    """Connections a server process may hold before it answers 503 instead of failing accept()."""
    return max(1, open_file_limit() - FD_RESERVE)
