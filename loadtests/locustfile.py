"""gateway-lab Locust scenarios: one user class per scenario, aimed at one target service.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 --target wsgi IoUser

User classes (pick one per run; with none named, the web UI offers all of them):
``HelloUser`` (GET /hello), ``IoUser`` (GET /io?ms=100), ``CpuUser`` (GET /cpu?n=...),
``StreamUser`` (SSE /stream), ``PollUser`` (long polling GET /poll, one publisher per run),
``WsEchoUser`` (WS /asgi/ws/echo), ``WsChatUser`` (WS /asgi/ws/chat). ``--target`` (env
``LOCUST_TARGET``) picks the variant behind nginx by its registry name (``flask-gthread``, ...) or
``wsgi``/``asgi`` (``/wsgi``, ``/asgi``); WebSocket users stop at once on a variant without them.

Distributed: ``--processes -1`` forks one worker per core on this host; on several hosts run
``locust --master ...`` once and ``locust --worker --master-host HOST -f ...`` on each.

Live statistics are exported to Prometheus on ``LOCUST_METRICS_BIND`` (default
127.0.0.1:9646) by the master/local process, announced through
``$PROMETHEUS_TARGETS_DIR/locust.json`` while it runs (see loadtests/exporter.py).
Set ``LOCUST_STEP_USERS`` for a step load shape (see loadtests/shapes.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Locust imports this file as a top-level module; make the `loadtests` package importable
# whether it runs from the repository root, /app in the image, or anywhere else.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from locust import events  # noqa: E402
from locust.runners import WorkerRunner  # noqa: E402

from loadtests.exporter import DEFAULT_BIND, Exporter  # noqa: E402
from loadtests.scenarios import (  # noqa: E402, F401 - Locust collects these by name
    CpuUser,
    HelloUser,
    IoUser,
    PollUser,
    StreamUser,
    WsChatUser,
    WsEchoUser,
)
from loadtests.settings import TARGETS, ScenarioSettings  # noqa: E402

if os.environ.get("LOCUST_STEP_USERS"):
    from loadtests.shapes import StepLoadShape  # noqa: E402, F401

_DEFAULTS = ScenarioSettings()
_exporter: Exporter | None = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    group = parser.add_argument_group("gateway-lab")
    group.add_argument(
        "--target",
        choices=TARGETS,
        default=_DEFAULTS.target,
        env_var="LOCUST_TARGET",
        help="variant behind nginx: wsgi (/wsgi, Flask on Gunicorn), asgi (/asgi, FastAPI on "
        "Uvicorn) or a registry name (flask-gthread, ...: its own prefix)",
    )
    options = [
        ("--io-ms", int, "io_ms", "LOCUST_IO_MS", "io: /io?ms= wait"),
        ("--cpu-n", int, "cpu_n", "LOCUST_CPU_N", "cpu: /cpu?n= work size"),
        ("--stream-events", int, "stream_events", "LOCUST_STREAM_EVENTS", "stream: events"),
        (
            "--stream-interval-ms",
            int,
            "stream_interval_ms",
            "LOCUST_STREAM_INTERVAL_MS",
            "stream: ms between events",
        ),
        ("--ws-rate", float, "ws_rate", "LOCUST_WS_RATE", "ws_echo: messages/s per user"),
        (
            "--ws-message-bytes",
            int,
            "ws_message_bytes",
            "LOCUST_WS_MESSAGE_BYTES",
            "ws_echo: message size",
        ),
        ("--chat-room-size", int, "chat_room_size", "LOCUST_CHAT_ROOM_SIZE", "ws_chat: room size"),
        ("--chat-rate", float, "chat_rate", "LOCUST_CHAT_RATE", "ws_chat: messages/s per user"),
        ("--poll-rate", float, "poll_rate", "LOCUST_POLL_RATE", "poll: messages/s published"),
        (
            "--poll-timeout-ms",
            int,
            "poll_timeout_ms",
            "LOCUST_POLL_TIMEOUT_MS",
            "poll: how long each GET /poll waits",
        ),
    ]
    for flag, kind, field, env, text in options:
        group.add_argument(
            flag, type=kind, default=getattr(_DEFAULTS, field), env_var=env, help=text
        )


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    global _exporter
    opts = environment.parsed_options
    if opts is not None:
        environment.gateway_settings = ScenarioSettings.from_mapping(vars(opts))
    if isinstance(environment.runner, WorkerRunner):
        return  # the master exports the aggregated statistics
    if os.environ.get("LOCUST_METRICS_DISABLE"):
        return
    settings = getattr(environment, "gateway_settings", None) or ScenarioSettings.from_env()
    environment.gateway_settings = settings
    labels = {"target": settings.target, "role": "master" if opts and opts.master else "local"}
    _exporter = Exporter(
        environment,
        bind=os.environ.get("LOCUST_METRICS_BIND", DEFAULT_BIND),
        targets_dir=os.environ.get("PROMETHEUS_TARGETS_DIR"),
        labels=labels,
    )
    _exporter.start()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    # The poll scenario's publisher stops with the test; the next start opens a new room.
    room = getattr(environment, "gateway_poll", None)
    if room is not None:
        room.stop()
        environment.gateway_poll = None


@events.quit.add_listener
def _on_quit(**_kwargs) -> None:
    if _exporter is not None:
        _exporter.stop()
