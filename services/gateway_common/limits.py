"""Descriptor budget shared by the servers and stackctl's edge arithmetic (stackctl.capacity)."""

from __future__ import annotations

import resource

#: Descriptors a process needs besides its sockets: log files, listeners, pipes, eventfds.
FD_RESERVE = 64
#: Listen queue of nginx's public listeners and of Uvicorn: a ramp of handshakes waits here
#: instead of being dropped (Linux caps it at net.core.somaxconn, 4096 by default).
LISTEN_BACKLOG = 4096


def open_file_limit() -> int:
    """This process's soft limit on open files (what it can really use)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return hard if hard != resource.RLIM_INFINITY else 1 << 20
    return soft


def connection_limit() -> int:
    """Connections a server process may hold before it answers 503 instead of failing accept()."""
    return max(1, open_file_limit() - FD_RESERVE)
