"""Where the running stack answers, and what each service declares about itself.

The addresses come from ``stackctl`` (the same ``python -m stackctl env`` the Makefile exports),
so a lab measures the stack ``make up`` started, whatever its profile, ``STACK_PORT_OFFSET`` or
``HTTP_PORT``. Capacities are read from each service's ``/healthz``, never assumed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from stackctl.addresses import running_mode, running_stack_env
from stackctl.settings import Settings, SettingsError, load_settings
from stackctl.tls import certificate_paths

HEALTH_TIMEOUT_S = 5.0


class StackUnreachable(Exception):
    """No stack answers where ``make up`` would have put it."""


@dataclass(frozen=True)
class ServiceInfo:
    """A service's ``/healthz``: how many requests it can work on at once."""

    interface: str
    workers: int
    threads: int
    worker_class: str

    @property
    def capacity(self) -> int:
        """Requests served at once: sync workers x threads. For ASGI it is the event loops."""
        return self.workers * self.threads


@dataclass(frozen=True)
class LabStack:
    public_url: str
    ws_url: str
    #: Gunicorn's own port (native mode: loopback); None where it is not published (Docker).
    wsgi_direct_url: str | None
    #: Uvicorn's own port, likewise (its routes have no /asgi prefix there).
    asgi_direct_url: str | None
    #: The edge's TLS port (``TLS_URL``), when the stack has one; else None.
    tls_url: str | None
    #: The certificate that port presents, which the lab trusts as its own CA.
    tls_ca: Path | None
    mode: str

    @classmethod
    def from_settings(cls, settings: Settings, mode: str | None = None) -> LabStack:
        env = running_stack_env(settings)
        mode = mode or running_mode(settings) or "native"
        public = env["PUBLIC_URL"].rstrip("/")
        native = mode == "native"
        return cls(
            public_url=public,
            ws_url=env.get("WS_URL", public.replace("http://", "ws://", 1)).rstrip("/"),
            wsgi_direct_url=settings.url("wsgi") if native else None,
            asgi_direct_url=settings.url("asgi") if native else None,
            tls_url=env["TLS_URL"].rstrip("/") if env.get("TLS_URL") else None,
            tls_ca=certificate_paths(settings.state_dir, settings.environ).cert,
            mode=mode,
        )

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> LabStack:
        environ = dict(os.environ if environ is None else environ)
        try:
            settings = load_settings(environ.get("STACK_PROFILE") or "default", environ)
        except SettingsError as exc:
            raise StackUnreachable(str(exc)) from None
        return cls.from_settings(settings)

    def service(self, interface: str) -> ServiceInfo:
        """``GET /<interface>/healthz`` through nginx; StackUnreachable when nothing answers."""
        url = f"{self.public_url}/{interface}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S) as response:
                doc = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StackUnreachable(
                f"no stack answers at {url} ({reason}); start it with `make up`"
            ) from None
        return ServiceInfo(
            interface=str(doc["interface"]),
            workers=int(doc["workers"]),
            threads=int(doc["threads"]),
            worker_class=str(doc["worker_class"]),
        )
