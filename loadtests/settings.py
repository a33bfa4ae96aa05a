"""Scenario parameters shared by the Locust user classes, the locustfile's CLI and the bench.

Pure module (no Locust import): the bench validates options with it before starting Locust.
The bounds are the services' own (`gateway_common.validation`); the defaults of the scenarios
are the fields of `ScenarioSettings`, the one copy the bench, the locustfile and the docs use.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from gateway_common import validation, variants

#: The two default services' short names, kept from before the variant registry: `wsgi` is
#: Flask on Gunicorn (`/wsgi`), `asgi` FastAPI on Uvicorn (`/asgi`).
ALIASES = {"wsgi": "flask", "asgi": "fastapi"}
#: What a target can be named: an alias or a registry variant.
TARGETS = (*ALIASES, *variants.BY_NAME)

#: Scenario name -> Locust user class name (one user class per scenario).
SCENARIO_CLASSES = {
    "hello": "HelloUser",
    "io": "IoUser",
    "cpu": "CpuUser",
    "stream": "StreamUser",
    "ws_echo": "WsEchoUser",
    "ws_chat": "WsChatUser",
    "poll": "PollUser",
}
SCENARIOS = tuple(SCENARIO_CLASSES)

#: Open model (requests on a schedule at an offered rate, not users in a loop): the scenarios
#: made of one plain HTTP request each, and their user classes.
OPEN_SCENARIO_CLASSES = {
    "hello": "OpenHelloUser",
    "io": "OpenIoUser",
    "cpu": "OpenCpuUser",
}
OPEN_SCENARIOS = tuple(OPEN_SCENARIO_CLASSES)
#: Highest offered rate per step, and the most requests an open-model user keeps in flight (its
#: connection pool; beyond it a send waits for a connection, still timed from its schedule).
OPEN_RATE_MAX = 5000.0
OPEN_MAX_IN_FLIGHT = 1000

#: Scenarios that need WebSockets, which the registry declares per variant.
WEBSOCKET_SCENARIOS = frozenset({"ws_echo", "ws_chat"})

#: Bounds enforced by the services (docs/architecture.md); checked here so a typo fails fast.
BOUNDS = {
    "io_ms": (validation.IO_MS_MIN, validation.IO_MS_MAX),
    "cpu_n": (validation.CPU_N_MIN, validation.CPU_N_MAX),
    "stream_events": (validation.STREAM_EVENTS_MIN, validation.STREAM_EVENTS_MAX),
    "stream_interval_ms": (validation.STREAM_INTERVAL_MS_MIN, validation.STREAM_INTERVAL_MS_MAX),
    "poll_timeout_ms": (validation.POLL_TIMEOUT_MS_MIN, validation.POLL_TIMEOUT_MS_MAX),
}


def variant_of(target: str) -> variants.Variant:
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (expected one of {', '.join(TARGETS)})")
    return variants.get(ALIASES.get(target, target))


def applicable(scenario: str, target: str) -> bool:
    """Whether ``scenario`` exists on ``target`` (WebSockets only where the variant has them)."""
    return scenario not in WEBSOCKET_SCENARIOS or variant_of(target).websockets


def prefix(target: str) -> str:
    """The nginx path prefix of a target variant (the registry's)."""
    return variant_of(target).prefix


def ws_url(host: str, path: str) -> str:
    """``http://h:p`` + ``/asgi/ws/echo`` -> ``ws://h:p/asgi/ws/echo`` (https -> wss)."""
    base = host.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return base + path


def http_path(scenario: str, settings: ScenarioSettings) -> str:
    """The one request of a plain HTTP scenario (hello, io, cpu), without the target prefix."""
    if scenario == "hello":
        return "/hello"
    if scenario == "io":
        return f"/io?ms={settings.io_ms}"
    if scenario == "cpu":
        return f"/cpu?n={settings.cpu_n}"
    raise ValueError(f"{scenario!r} is not a plain HTTP scenario")


def parse_steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError(
            f"LOCUST_STEP_USERS must be comma-separated integers, got {text!r}"
        ) from None
    if not steps or any(n < 1 for n in steps):
        raise ValueError(f"LOCUST_STEP_USERS must list positive integers, got {text!r}")
    return steps


@dataclass(frozen=True)
class ScenarioSettings:
    """What the user classes send. Defaults are the bench's defaults."""

    target: str = "asgi"
    #: ``/io?ms=`` wait of the io scenario.
    io_ms: int = 100
    #: ``/cpu?n=`` work size of the cpu scenario (~15-20 ms of pure Python).
    cpu_n: int = 300_000
    #: ``/stream?events=&interval_ms=`` of the stream scenario.
    stream_events: int = 10
    stream_interval_ms: int = 100
    #: Messages per second each ws_echo user sends (fixed rate, not back-to-back).
    ws_rate: float = 10.0
    #: Size of each ws_echo message (bytes of text).
    ws_message_bytes: int = 64
    #: ws_chat: users per room, and messages per second each user sends.
    chat_room_size: int = 10
    chat_rate: float = 1.0
    #: poll: messages per second the publisher posts to the pollers' room, and how long each
    #: `GET /poll` may wait for one (`timeout_ms`; 204 when none came).
    poll_rate: float = 2.0
    poll_timeout_ms: int = 2000
    #: Path prefix in front of the routes; None = the registry's (``/wsgi``, ``/flask-gevent``:
    #: through nginx), "" when the host is the service itself (the bench's ``--direct``). The
    #: bench passes the one /variants.json gives.
    path_prefix: str | None = None

    @property
    def stream_s(self) -> float:
        """How long one stream lasts: the first event at once, then (events - 1) intervals."""
        return (self.stream_events - 1) * self.stream_interval_ms / 1000.0

    @property
    def poll_wait_s(self) -> float:
        """How long a waiting poll holds its slot: until the next message, or its timeout."""
        return min(1.0 / self.poll_rate, self.poll_timeout_ms / 1000.0)

    @property
    def prefix(self) -> str:
        return prefix(self.target) if self.path_prefix is None else self.path_prefix.rstrip("/")

    def __post_init__(self) -> None:
        prefix(self.target)
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, got {value}")
        if self.stream_events * self.stream_interval_ms > validation.STREAM_TOTAL_MS_MAX:
            raise ValueError(
                f"stream_events x stream_interval_ms must be <= {validation.STREAM_TOTAL_MS_MAX}"
            )
        if self.ws_rate <= 0 or self.chat_rate <= 0 or self.poll_rate <= 0:
            raise ValueError("ws_rate, chat_rate and poll_rate must be > 0")
        if not 1 <= self.ws_message_bytes <= 60000:
            raise ValueError("ws_message_bytes must be between 1 and 60000")
        if self.chat_room_size < 1:
            raise ValueError("chat_room_size must be >= 1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ScenarioSettings:
        """Build from a mapping (e.g. ``vars(parsed_options)``), ignoring unknown/None keys."""
        kwargs = {}
        for f in fields(cls):
            if values.get(f.name) is not None:
                default = getattr(cls, f.name)
                kind = str if default is None else type(default)
                kwargs[f.name] = kind(values[f.name])
        return cls(**kwargs)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ScenarioSettings:
        """Build from ``LOCUST_TARGET``, ``LOCUST_IO_MS``, ... (upper-cased field names)."""
        environ = os.environ if environ is None else environ
        values = {f.name: environ.get(f"LOCUST_{f.name.upper()}") for f in fields(cls)}
        return cls.from_mapping(values)
