"""Flask service (WSGI, served by Gunicorn): the contract's HTTP surface.

Validation, payloads, errors and metrics come from `gateway_common`, so this service
and the FastAPI one answer alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_app.middleware import ObservabilityMiddleware
from flask_app.settings import INTERFACE, WsgiSettings, load_wsgi_settings
from gateway_common import long_poll, responses, validation, workload
from gateway_common.errors import (
    ApiError,
    code_for_status,
    internal_error,
    method_not_allowed_error,
    not_found_error,
)


def _identity(settings: WsgiSettings) -> responses.ServiceIdentity:
    return responses.ServiceIdentity(
        service=settings.service,
        server=settings.server,
        interface=INTERFACE,
        workers=settings.workers,
        worker_class=settings.worker_class,
        threads=settings.threads,
        framework="flask",
    )


def _error_response(error: ApiError) -> tuple[Response, int]:
    return jsonify(error.to_body()), error.status


def create_app(settings: WsgiSettings | None = None) -> Flask:
    """The app; ``settings`` default to the environment's (what Gunicorn's factory call gets)."""
    settings = settings or load_wsgi_settings()
    identity = _identity(settings)
    app = Flask(__name__)
    # One byte over the contract's bound: werkzeug cuts a chunked body at this limit
    # without an error, so the view sees "limit + 1" bytes and refuses it itself (413).
    app.config["MAX_CONTENT_LENGTH"] = validation.MAX_BODY_BYTES + 1
    # FastAPI answers OPTIONS with 405 too; keep both services alike.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the contract's key order
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # same bytes as FastAPI
    # Trust X-Forwarded-* from exactly as many proxies as sit in front (nginx: 1).
    count = settings.proxy_count
    app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
        app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_prefix=count
    )
    _register_error_handlers(app)
    _register_routes(app, identity)
    _register_poll_routes(app, settings.redis_url)
    # Outermost, so the request's duration covers everything the app does.
    app.wsgi_app = ObservabilityMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, app.url_map, settings.service
    )
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def handle_api_error(error: ApiError) -> tuple[Response, int]:
        return _error_response(error)

    @app.errorhandler(InternalServerError)
    def handle_internal_error(_error: InternalServerError) -> tuple[Response, int]:
        return _error_response(internal_error())  # Flask has logged the exception already

    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Any:
        status = error.code or 500
        if status == 404:
            return _error_response(not_found_error(request.method, request.path))
        if status == 405:
            response, _ = _error_response(method_not_allowed_error(request.method, request.path))
            valid_methods = getattr(error, "valid_methods", None)
            if valid_methods:
                response.headers["Allow"] = ", ".join(valid_methods)
            return response, 405
        if status == 413:
            return _error_response(validation.payload_too_large_error())
        message = error.description or error.name
        return _error_response(ApiError(status, code_for_status(status), message))


def _register_routes(app: Flask, identity: responses.ServiceIdentity) -> None:
    @app.get("/healthz")
    def healthz() -> Any:
        return responses.health(identity)

    @app.get("/hello")
    def hello() -> Any:
        return responses.hello(identity)

    @app.get("/io")
    def io() -> Any:
        ms = validation.io_ms(request.args.getlist("ms"))
        waited_ms = workload.blocking_wait(ms)
        return responses.io_result(identity, ms, waited_ms, mode="time.sleep")

    @app.get("/cpu")
    def cpu() -> Any:
        n = validation.cpu_n(request.args.getlist("n"))
        started = time.perf_counter()
        result = workload.cpu_work(n)
        return responses.cpu_result(identity, n, result, workload.elapsed_ms(started))

    @app.get("/stream")
    def stream() -> Response:
        params = validation.stream_params(
            request.args.getlist("events"), request.args.getlist("interval_ms")
        )

        def events() -> Iterator[str]:
            for seq in range(1, params.events + 1):
                yield responses.sse_tick(identity, seq, params.events)
                if seq < params.events:
                    time.sleep(params.interval_ms / 1000)
            yield responses.sse_end(identity, params.events)

        return Response(events(), mimetype=responses.SSE_MEDIA_TYPE, headers=responses.SSE_HEADERS)

    @app.post("/echo")
    def echo() -> Any:
        validation.check_json_content_type(request.content_type)  # 415 before reading
        body = request.get_data(cache=False)  # Content-Length over the limit: 413 from werkzeug
        document = validation.echo_body(request.content_type, body)
        return responses.echo_result(identity, document)


def _poll_response(answer: long_poll.PollAnswer) -> Response:
    response = Response(answer.body, status=answer.status, headers=dict(answer.headers))
    if answer.content_type is None:
        del response.headers["Content-Type"]  # Flask's text/html default; a 204 has no body
    return response


def _register_poll_routes(app: Flask, redis_url: str) -> None:
    """Long polling (gateway_common.long_poll): each wait holds this worker's thread (or
    greenlet) until a message comes or the time is up."""

    @app.get("/poll")
    def poll_wait() -> Response:
        params = validation.poll_params(
            request.args.getlist("room"), request.args.getlist("timeout_ms")
        )
        return _poll_response(long_poll.answer_get_sync(redis_url, params))

    @app.post("/poll")
    def poll_publish() -> Response:
        room = validation.poll_room(request.args.getlist("room"))
        answer = long_poll.answer_post_sync(
            redis_url,
            room,
            request.content_type,
            # Content-Length over the limit: 413 from werkzeug (MAX_CONTENT_LENGTH)
            lambda: request.get_data(cache=False),
        )
        return _poll_response(answer)
