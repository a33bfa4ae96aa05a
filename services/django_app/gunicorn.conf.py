"""Gunicorn settings for the Django service over WSGI: every setting lives here, none on a
command line.

Start from the repository root (or the image's working dir):
    gunicorn -c services/django_app/gunicorn.conf.py
Values come from the `DJANGO_*` variables (`django_app.settings_env`); a bad value stops the
start with a message that names the variable.
"""

from __future__ import annotations

from typing import Any

from django_app.settings_env import WSGI, load_django_settings
from gateway_common.logging import log_config_dict

# Imports prometheus_client: fails here, before any worker starts, without
# PROMETHEUS_MULTIPROC_DIR in the environment.
from gateway_common import metrics  # isort: skip

_settings = load_django_settings(WSGI)

wsgi_app = "django_app.app:create_wsgi_app()"
bind = [str(_settings.bind)]
workers = _settings.workers
threads = _settings.threads
worker_class = _settings.worker_class

# Idle keep-alive towards nginx; must exceed nginx's upstream keepalive_timeout (60 s).
# Only gthread keeps connections alive; sync workers close after each response.
keepalive = _settings.keepalive_s
# A sync worker serving a request does not answer the arbiter, which kills it after `timeout`
# seconds; the longest request the contract allows is a 60 s stream, so: that plus a margin.
timeout = 90
graceful_timeout = 30

loglevel = _settings.log_level
logconfig_dict = log_config_dict(_settings.service, _settings.log_level)
accesslog = None  # the app logs every request as JSON, with its request id

# Gunicorn >= 25 opens a control socket at a per-user default path, which two instances
# (native and test stacks) would share; nothing here uses it.
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Master, before any worker: fresh metrics directory, server gauges."""
    metrics.prepare_multiproc_dir()
    metrics.set_server_gauges(_settings.service, WSGI, _settings.workers, _settings.capacity)


def when_ready(server: Any) -> None:
    """Master, sockets bound: serve the aggregated metrics on their own port."""
    metrics.serve_metrics(_settings.metrics_bind)


def child_exit(server: Any, worker: Any) -> None:
    """Master, a worker is gone (also when killed): drop its live gauge samples."""
    metrics.mark_dead(worker.pid)
