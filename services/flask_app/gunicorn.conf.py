"""Gunicorn settings for the Flask service: every setting lives here, none on a command line.

Start from the repository root (or the image's working dir):
    gunicorn -c services/flask_app/gunicorn.conf.py
Values come from the environment (docs/architecture.md); a bad value stops the start with
a message that names the variable.
"""

from __future__ import annotations

from flask_app.settings import INTERFACE, REQUEST_TIMEOUT_S, load_wsgi_settings
from gateway_common import variants
from gateway_common.limits import GRACEFUL_SHUTDOWN_S
from gateway_common.logging import log_config_dict

# Imports prometheus_client: fails here, before any worker starts, without
# PROMETHEUS_MULTIPROC_DIR in the environment.
from gateway_common import gunicorn_hooks  # isort: skip

_settings = load_wsgi_settings()

wsgi_app = "flask_app.app:create_app()"
bind = [str(_settings.bind)]
workers = _settings.workers
threads = _settings.threads
worker_class = _settings.worker_class
# gevent: greenlets per worker, the worker's bound (its declared capacity per worker).
worker_connections = variants.GEVENT_WORKER_CONNECTIONS

# Idle keep-alive towards nginx; must exceed nginx's upstream keepalive_timeout (60 s).
# Only gthread keeps connections alive; sync workers close after each response.
keepalive = _settings.keepalive_s
# A sync worker that does not answer the arbiter for `timeout` seconds is killed, and a
# sync worker serving a request does not answer: the timeout is the longest request's bound.
timeout = REQUEST_TIMEOUT_S
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
