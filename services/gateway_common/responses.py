"""Success documents of the HTTP surface, built in one place so both services match."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceIdentity:
    """Who answers: goes into every document and every metric label."""

    service: str  # the variant's name: "flask", "fastapi", "flask-gevent", ...
    server: str  # "gunicorn", "uvicorn", "uwsgi", ...
    interface: str  # "wsgi" / "asgi" / "tornado"
    workers: int
    worker_class: str
    threads: int
    framework: str  # "flask", "fastapi", "django", "tornado"


def health(identity: ServiceIdentity) -> dict[str, Any]:
    return {
        "status": "ok",
        "service": identity.service,
        "framework": identity.framework,
        "server": identity.server,
        "interface": identity.interface,
        "pid": os.getpid(),
        # Tells replicas apart in Docker mode (each container has its own hostname).
        "host": socket.gethostname(),
        "workers": identity.workers,
        "worker_class": identity.worker_class,
        "threads": identity.threads,
    }


def hello(identity: ServiceIdentity) -> dict[str, Any]:
    return {"message": "hello", "service": identity.service}


def io_result(
    identity: ServiceIdentity, requested_ms: int, waited_ms: float, mode: str
) -> dict[str, Any]:
    return {
        "service": identity.service,
        "interface": identity.interface,
        "requested_ms": requested_ms,
        "waited_ms": waited_ms,
        "mode": mode,
    }


def cpu_result(identity: ServiceIdentity, n: int, result: int, elapsed_ms: float) -> dict[str, Any]:
    return {
        "service": identity.service,
        "interface": identity.interface,
        "n": n,
        "result": result,
        "elapsed_ms": elapsed_ms,
    }


def echo_result(identity: ServiceIdentity, document: dict[str, Any]) -> dict[str, Any]:
    return {"service": identity.service, "echo": document, "length": len(document["message"])}


# Server-sent events (`GET /stream`).

SSE_MEDIA_TYPE = "text/event-stream"
# no-cache: never store the stream; X-Accel-Buffering: tells nginx not to buffer it.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _compact(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def sse_tick(identity: ServiceIdentity, seq: int, of: int) -> str:
    data = _compact({"seq": seq, "of": of, "service": identity.service})
    return f"id: {seq}\nevent: tick\ndata: {data}\n\n"


def sse_end(identity: ServiceIdentity, of: int) -> str:
    data = _compact({"of": of, "service": identity.service})
    return f"event: end\ndata: {data}\n\n"
