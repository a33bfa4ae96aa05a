"""Connection limits of the edge and the ASGI server, derived from one open-file budget.

Both run modes call :func:`edge_limits`: native mode with this machine's per-process hard limit
on open files, Docker mode (the compose ``config`` service) with ``CONTAINER_NOFILE``. The nginx
template, Uvicorn's settings and the docs read the result; nothing else states these numbers.
The arithmetic is written out in docs/architecture.md ("Connection capacity").
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass

from gateway_common.limits import FD_RESERVE, LISTEN_BACKLOG

#: Per nginx worker, connection slots kept free for plain HTTP when WebSockets fill the rest.
HTTP_HEADROOM = 1024
#: The most of its fair share of connections one nginx worker is assumed to get. The public
#: listener uses `reuseport`, so the kernel hashes connections over the workers; 25 % above an
#: even split covers the spread measured at 10,000 sockets (docs/architecture.md).
WORKER_SHARE_MARGIN = 1.25
#: Native mode never asks for more descriptors than this, even when the hard limit is unlimited.
MAX_NOFILE = 65536
#: Resident memory a Uvicorn worker gains per open WebSocket (68.4 KiB measured with
#: `make bench-capacity` at 10,000 sockets, permessage-deflate negotiated), rounded up.
UVICORN_KIB_PER_WEBSOCKET = 72
#: Resident memory of the FastAPI service with no connection (two workers: 147 MiB measured),
#: plus a margin for its request buffers and the chat bus.
UVICORN_BASE_MIB = 192
#: Environment variable that lowers the WebSocket cap (e.g. a test stack); never raises it.
EDGE_MAX_CONNECTIONS_ENV = "EDGE_MAX_CONNECTIONS"


class CapacityError(ValueError):
    pass


@dataclass(frozen=True)
class EdgeLimits:
    nofile: int  # per process: nginx workers (worker_rlimit_nofile) and each Uvicorn worker
    nginx_workers: int
    worker_connections: int  # per nginx worker; a proxied socket takes two of them
    max_connections: int  # client connections across nginx past which new WebSockets get 503
    # Per Uvicorn worker, which computes it itself from its own open-file limit
    # (gateway_common.limits); HTTP only: Uvicorn never refuses an upgrade.
    uvicorn_limit_concurrency: int
    backlog: int = LISTEN_BACKLOG

    def nginx_values(self) -> dict[str, str]:
        """The nginx template's placeholders."""
        return {
            "NGINX_WORKER_PROCESSES": str(self.nginx_workers),
            "NGINX_WORKER_RLIMIT_NOFILE": str(self.nofile),
            "NGINX_WORKER_CONNECTIONS": str(self.worker_connections),
            "EDGE_MAX_CONNECTIONS": str(self.max_connections),
            "EDGE_OVER_CAPACITY_PATTERN": above_pattern(self.max_connections),
            "LISTEN_BACKLOG": str(self.backlog),
        }


def above_pattern(bound: int) -> str:
    """A regex matching the decimal numbers above `bound` (nginx's `if` cannot compare numbers;
    a `map` with this regex over $connections_active does)."""
    digits = str(bound)
    width = len(digits)
    alternatives = [f"[1-9][0-9]{{{width},}}"]
    for i, digit in enumerate(digits):
        if digit != "9":
            rest = width - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            alternatives.append(f"{digits[:i]}[{int(digit) + 1}-9]{tail}")
    return "^(?:" + "|".join(alternatives) + ")$"


def cpu_count() -> int:
    """What nginx's `worker_processes auto` would start: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def edge_limits(
    nofile: int,
    nginx_workers: int,
    requested_max: int | None = None,
    service_memory_mib: int | None = None,
) -> EdgeLimits:
    if nofile < 2 * (FD_RESERVE + HTTP_HEADROOM):
        raise CapacityError(
            f"an open-file limit of {nofile} is too low for the edge; "
            f"at least {2 * (FD_RESERVE + HTTP_HEADROOM)} is needed"
        )
    if nginx_workers < 1:
        raise CapacityError(f"nginx needs at least one worker, got {nginx_workers}")
    worker_connections = nofile - FD_RESERVE
    # One worker gets at most WORKER_SHARE_MARGIN times its fair share, capped at all of it.
    share = min(1.0, WORKER_SHARE_MARGIN / nginx_workers)
    # Each proxied socket takes two connections (client and upstream) in the worker holding it.
    by_nginx = int((worker_connections - HTTP_HEADROOM) / (2 * share))
    # Uvicorn's workers share one listener and the kernel may hand one of them every socket:
    # one worker must be able to hold the whole cap.
    by_uvicorn = nofile - FD_RESERVE - HTTP_HEADROOM
    derived = min(by_nginx, by_uvicorn)
    if service_memory_mib is not None:
        # Docker mode: the FastAPI container's memory limit bounds the sockets it can hold.
        derived = min(
            derived, (service_memory_mib - UVICORN_BASE_MIB) * 1024 // UVICORN_KIB_PER_WEBSOCKET
        )
        if derived < 1:
            raise CapacityError(f"a service memory limit of {service_memory_mib} MiB is too low")
    if requested_max is not None:
        if not 1 <= requested_max <= derived:
            raise CapacityError(
                f"{EDGE_MAX_CONNECTIONS_ENV} must be between 1 and {derived} "
                f"(what {nofile} open files per process allow), got {requested_max}"
            )
        derived = requested_max
    return EdgeLimits(
        nofile=nofile,
        nginx_workers=nginx_workers,
        worker_connections=worker_connections,
        max_connections=derived,
        uvicorn_limit_concurrency=nofile - FD_RESERVE,
    )


def native_nofile() -> int:
    """This machine's per-process hard limit (what stackctl raises its children's soft limit to)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return MAX_NOFILE if hard == resource.RLIM_INFINITY else min(hard, MAX_NOFILE)


def raise_soft_nofile(nofile: int) -> None:
    """Raise this process's soft limit (inherited by what it spawns) to `nofile`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= nofile:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))


def _int(environ: Mapping[str, str], name: str) -> int | None:
    raw = (environ.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise CapacityError(f"{name} must be an integer, got {raw!r}") from None


_UNITS = {"b": 1 / (1 << 20), "k": 1 / 1024, "m": 1, "g": 1024}


def memory_mib(raw: str) -> int:
    """Compose's memory notation (`512m`, `1g`, `1073741824`) in MiB."""
    text = raw.strip().lower().removesuffix("b") or "0"
    unit = text[-1] if text[-1] in _UNITS else "b"
    number = text[:-1] if text[-1] in _UNITS else text
    try:
        return int(float(number) * _UNITS[unit])
    except ValueError:
        raise CapacityError(f"SERVICE_MEMORY must be like 512m or 1g, got {raw!r}") from None


def limits_from_env(environ: Mapping[str, str], nofile: int) -> EdgeLimits:
    return edge_limits(nofile, cpu_count(), _int(environ, EDGE_MAX_CONNECTIONS_ENV))


def container_limits(environ: Mapping[str, str]) -> EdgeLimits:
    """Docker mode: CONTAINER_NOFILE and SERVICE_MEMORY, as the compose file passes them."""
    nofile = _int(environ, "CONTAINER_NOFILE")
    memory = (environ.get("SERVICE_MEMORY") or "").strip()
    if nofile is None or not memory:
        raise CapacityError("CONTAINER_NOFILE and SERVICE_MEMORY are required")
    return edge_limits(
        nofile, cpu_count(), _int(environ, EDGE_MAX_CONNECTIONS_ENV), memory_mib(memory)
    )


def main() -> int:
    """`python -m stackctl.capacity`: print the limits this machine gets natively."""
    limits = limits_from_env(os.environ, native_nofile())
    for name, value in limits.nginx_values().items():
        print(f"{name}={value}")
    print(f"UVICORN_LIMIT_CONCURRENCY={limits.uvicorn_limit_concurrency}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
