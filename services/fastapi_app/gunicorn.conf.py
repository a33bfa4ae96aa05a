"""Gunicorn settings for the FastAPI service on Gunicorn's own ASGI worker (`asgi`).

Start from the repository root (or the image's working dir):
    gunicorn -c services/fastapi_app/gunicorn.conf.py
Every setting lives here, none on a command line. Values come from the environment
(docs/architecture.md), read by the same code as the other FastAPI launchers
(fastapi_app.settings); the master serves the aggregated metrics from the shared hooks
(gateway_common.gunicorn_hooks). The workers are forked from the master after it loaded this file,
not the app: each imports the app and runs its lifespan itself.
"""

from __future__ import annotations

from fastapi_app.settings import INTERFACE, load_asgi_settings
from gateway_common.limits import (
    GRACEFUL_SHUTDOWN_S,
    LISTEN_BACKLOG,
    WS_SERVER_MESSAGE_LIMIT_BYTES,
    connection_limit,
)
from gateway_common.logging import log_config_dict

# Imports prometheus_client: fails here, before any worker starts, without
# PROMETHEUS_MULTIPROC_DIR in the environment.
from gateway_common import gunicorn_hooks  # isort: skip

_settings = load_asgi_settings()

# The proxy-header check Uvicorn makes (fastapi_app.proxied): Gunicorn's ASGI worker applies
# forwarded_allow_ips to the scheme headers only, never to the client address.
wsgi_app = "fastapi_app.proxied:create_app()"
worker_class = _settings.worker_class  # the registry's: "asgi", Gunicorn's own ASGI worker
workers = _settings.workers
bind = [str(_settings.bind)]
backlog = LISTEN_BACKLOG
# Connections one worker holds at once: Uvicorn's limit_concurrency, from the same budget.
worker_connections = connection_limit()
asgi_loop = "uvloop"  # as Uvicorn's (fastapi_app.serve)
asgi_lifespan = "on"  # the chat bus starts in the lifespan: a failure must stop the server
root_path = _settings.root_path
forwarded_allow_ips = _settings.forwarded_allow_ips
# The app closes a message over WS_MAX_MESSAGE_BYTES with 1009 itself (gateway_common.limits).
websocket_max_message_size = WS_SERVER_MESSAGE_LIMIT_BYTES

# Idle keep-alive towards nginx; must exceed nginx's upstream keepalive_timeout (60 s).
keepalive = _settings.keepalive_s
# The worker tells the arbiter it is alive from its event loop: a loop blocked this long is
# replaced. The contract's longest blocking call (/io/blocking, 10 s) fits.
timeout = 30
graceful_timeout = GRACEFUL_SHUTDOWN_S

loglevel = _settings.log_level
logconfig_dict = log_config_dict(_settings.service, _settings.log_level)
accesslog = None  # the app logs every request as JSON, with its request id

# Gunicorn >= 25 opens a control socket at a per-user default path, which two instances
# (native and test stacks) would share; nothing here uses it.
control_socket_disable = True

_hooks = gunicorn_hooks.MetricsHooks(
    service=_settings.service,
    interface=INTERFACE,
    workers=_settings.workers,
    capacity=_settings.capacity,
    metrics_bind=_settings.metrics_bind,
)
on_starting = _hooks.on_starting
when_ready = _hooks.when_ready
child_exit = _hooks.child_exit
