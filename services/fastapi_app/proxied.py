"""The FastAPI app behind the proxy-header check that Uvicorn does itself.

Uvicorn takes the client address and scheme from `X-Forwarded-For`/`-Proto` only when the peer is
in FORWARDED_ALLOW_IPS. The other servers cannot express that: Hypercorn trusts a number of hops
whatever the peer, Daphne trusts every peer, Gunicorn's ASGI worker reads only the scheme, and
Granian has no server setting for it. They serve this app instead, which applies the same rule
(Uvicorn's own middleware, the code Uvicorn runs for it).
"""

from __future__ import annotations

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from fastapi_app.app import create_app as create_bare_app
from fastapi_app.settings import AsgiSettings, load_asgi_settings


def create_app(settings: AsgiSettings | None = None) -> ProxyHeadersMiddleware:
    """The app; ``settings`` default to the environment's (what a server's factory call gets)."""
    settings = settings or load_asgi_settings()
    return ProxyHeadersMiddleware(
        create_bare_app(settings), trusted_hosts=settings.forwarded_allow_ips
    )
