"""The WSGI callable uWSGI imports in each worker (`module` in uwsgi.ini).

Imported after the fork (lazy-apps): JSON logging for this worker, then the app.
"""

from __future__ import annotations

import signal

from flask_app.worker_signals import StopGuard

# Before the slow imports below. SIGHUP: the master's graceful stop; SIGINT/SIGTERM: its
# fast one (or anything else stopping the worker).
_stop_guard = StopGuard(signal.SIGHUP, signal.SIGINT, signal.SIGTERM)

import json  # noqa: E402  (the handlers above come first)
import logging.config  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import Any  # noqa: E402

from flask_app.app import create_app  # noqa: E402
from flask_app.settings import load_wsgi_settings  # noqa: E402
from gateway_common.errors import error_body  # noqa: E402
from gateway_common.logging import log_config_dict  # noqa: E402
from gateway_common.request_id import REQUEST_ID_HEADER, resolve_request_id  # noqa: E402

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# nginx's answer to malformed HTTP, byte for byte (nginx.conf.template).
_BODY = error_body(400, "bad_request", "malformed HTTP request")
MALFORMED = (json.dumps(_BODY, separators=(",", ":")) + "\n").encode()


def reject_malformed(app: WsgiApp) -> WsgiApp:
    """Answer the contract's 400 to a request uWSGI could not parse.

    uWSGI's http-socket hands such a request (no method, e.g. a line of garbage) to the app
    without REQUEST_METHOD, where Flask would raise. nginx never forwards one; a client talking
    to the port directly gets the same error document nginx would send.
    """

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD"):
            return app(environ, start_response)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(MALFORMED))),
            (REQUEST_ID_HEADER, resolve_request_id(None)),
        ]
        start_response("400 Bad Request", headers)
        return [MALFORMED]

    return guarded


_settings = load_wsgi_settings()
logging.config.dictConfig(log_config_dict(_settings.service, _settings.log_level))

application = reject_malformed(create_app(_settings))
_stop_guard.imported()
