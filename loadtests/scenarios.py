"""Locust user classes: one per scenario, each aimed at one target (``/wsgi`` or ``/asgi``).

The target and the scenario parameters come from ``environment.gateway_settings`` (a
:class:`~loadtests.settings.ScenarioSettings`, set by the locustfile from its command line or by
the bench), falling back to ``LOCUST_*`` environment variables.

Besides Locust's own statistics, every HTTP request and WebSocket message is counted in
:data:`COUNTS` as *started* and *completed*, so the bench can compare what the client sent with
what the servers counted even for requests cut off when a step ends.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
import time
from collections import Counter

import gevent
from locust import User, constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from websockets.sync.client import connect as ws_connect

from loadtests.settings import ScenarioSettings, applicable, ws_url

log = logging.getLogger("loadtests")

#: (target, scenario, what) -> count, what in {"started", "completed", "gateway_error"}.
#: "gateway_error" counts 502/503/504 answers, which nginx may have produced on its own.
COUNTS: Counter[tuple[str, str, str]] = Counter()

_user_ids = itertools.count()
_warned: set[tuple[str, str]] = set()


def settings_for(environment) -> ScenarioSettings:
    settings = getattr(environment, "gateway_settings", None)
    if settings is None:
        settings = ScenarioSettings.from_env()
        environment.gateway_settings = settings
    return settings


class _Gateway:
    """Mixin: target resolution and the started/completed bookkeeping."""

    scenario = ""

    def _setup_target(self) -> None:
        self.settings = settings_for(self.environment)
        self.target = self.settings.target
        self.prefix = self.settings.prefix
        if not applicable(self.scenario, self.target):
            key = (self.scenario, self.target)
            if key not in _warned:
                _warned.add(key)
                log.warning(
                    "scenario %s is not applicable to target %s (WebSockets are ASGI only); "
                    "its users stop at once",
                    self.scenario,
                    self.target,
                )
            raise StopUser()

    def _count(self, what: str, n: int = 1) -> None:
        COUNTS[(self.target, self.scenario, what)] += n


class _GatewayHttpUser(_Gateway, FastHttpUser):
    abstract = True
    #: Closed loop: each user sends its next request as soon as the previous one is answered,
    #: so throughput = users / latency (Little's law) until the server saturates.
    wait_time = constant(0)
    #: One connection per user: a user has one request in flight at a time anyway.
    concurrency = 1

    def on_start(self) -> None:
        self._setup_target()

    def _get(self, path: str, name: str) -> None:
        self._count("started")
        with self.client.get(self.prefix + path, name=name, catch_response=True) as resp:
            self._count("completed")
            if resp.status_code in (502, 503, 504):
                self._count("gateway_error")
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")


class HelloUser(_GatewayHttpUser):
    """GET /hello back-to-back: the per-request overhead of each stack."""

    scenario = "hello"

    @task
    def hello(self) -> None:
        self._get("/hello", "/hello")


class IoUser(_GatewayHttpUser):
    """GET /io?ms=100 back-to-back: waiting, not computing. Sync workers block while waiting."""

    scenario = "io"

    @task
    def io(self) -> None:
        self._get(f"/io?ms={self.settings.io_ms}", "/io")


class CpuUser(_GatewayHttpUser):
    """GET /cpu?n=... back-to-back: pure-Python work, bounded by cores and the GIL."""

    scenario = "cpu"

    @task
    def cpu(self) -> None:
        self._get(f"/cpu?n={self.settings.cpu_n}", "/cpu")


class StreamUser(_GatewayHttpUser):
    """Server-sent events: each user holds one stream open, reads it to the end, reconnects.

    Reported as ``SSE /stream [first event]`` (request start to the first complete ``tick``
    event) and ``SSE /stream [complete]`` (to the ``end`` event). A sync worker is held for the
    whole stream, so streams queue behind each other on WSGI.
    """

    scenario = "stream"

    def on_start(self) -> None:
        super().on_start()
        # Users spawned together would finish their streams together, in bursts a short
        # measurement window cuts unevenly: start each at a random phase of a stream.
        s = self.settings
        gevent.sleep(random.uniform(0, (s.stream_events - 1) * s.stream_interval_ms / 1000))

    @task
    def stream(self) -> None:
        s = self.settings
        path = f"/stream?events={s.stream_events}&interval_ms={s.stream_interval_ms}"
        fire = self.environment.events.request.fire
        start_wall = time.time()
        start = time.perf_counter()
        self._count("started")
        # stream=True: Locust's own "GET /stream" entry is the time to the response headers.
        resp = self.client.get(
            self.prefix + path,
            name="/stream [headers]",
            stream=True,
            headers={"Accept": "text/event-stream"},
        )
        first_ms = None
        ticks = 0
        error: Exception | None = None
        ended = False
        raw = getattr(resp, "_response", None)
        try:
            if resp.status_code != 200 or raw is None:
                raise RuntimeError(f"HTTP {resp.status_code}")
            event = None
            while True:
                line = raw.readline(b"\n")
                if not line:
                    break
                line = line.rstrip(b"\r\n")
                if line.startswith(b"event:"):
                    event = line[6:].strip()
                elif line == b"" and event is not None:
                    if event == b"tick":
                        ticks += 1
                        if first_ms is None:
                            first_ms = (time.perf_counter() - start) * 1000
                    elif event == b"end":
                        ended = True
                        break
                    event = None
            if not ended:
                raise RuntimeError(f"stream ended after {ticks} of {s.stream_events} events")
            if ticks != s.stream_events:
                raise RuntimeError(f"got {ticks} events, expected {s.stream_events}")
        except Exception as exc:  # reported as a Locust failure
            error = exc
            # Unread data on the connection: never reuse it.
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.release()
        finally:
            self._count("completed")
            if resp.status_code in (502, 503, 504):
                self._count("gateway_error")
        total_ms = (time.perf_counter() - start) * 1000
        common = {
            "request_type": "SSE",
            "response_length": ticks,
            "context": {},
            "start_time": start_wall,
        }
        fire(
            name="/stream [first event]",
            response_time=first_ms if first_ms is not None else total_ms,
            exception=error if first_ms is None else None,
            **common,
        )
        fire(name="/stream [complete]", response_time=total_ms, exception=error, **common)


def _short_error(exc: Exception) -> Exception:
    """One stable message per kind of failure (Locust groups its error table by message)."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return RuntimeError(f"WebSocket handshake refused: HTTP {status}")
    return RuntimeError(f"{type(exc).__name__}: {exc}")


class _WsUser(_Gateway, User):
    """Base of the WebSocket users: one connection per user, statistics as ``WS`` requests."""

    abstract = True
    wait_time = constant(0)
    ws_path = ""

    def on_start(self) -> None:
        self._setup_target()
        self.ws = None
        self._connect()

    def _fire(self, name: str, response_time: float, length: int = 0, exception=None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=response_time,
            response_length=length,
            exception=exception,
            context={},
        )

    def _connect(self) -> None:
        url = ws_url(self.host or "", self.prefix + self.ws_path)
        start = time.perf_counter()
        try:
            self.ws = ws_connect(url, open_timeout=10, close_timeout=2, max_size=2**20)
        except Exception as exc:
            exc = _short_error(exc)
            self._fire(
                f"{self.ws_path.split('?')[0]} [connect]",
                (time.perf_counter() - start) * 1000,
                0,
                exc,
            )
            self.ws = None
            gevent.sleep(1)  # do not hammer a refusing server
            return
        self._fire(f"{self.ws_path.split('?')[0]} [connect]", (time.perf_counter() - start) * 1000)

    def on_stop(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()
            self.ws = None


class WsEchoUser(_WsUser):
    """WebSocket echo at a fixed rate per user: round-trip time of each message."""

    scenario = "ws_echo"
    ws_path = "/ws/echo"

    def on_start(self) -> None:
        super().on_start()
        # Random phase, so the users' messages do not all leave in the same millisecond.
        self._next = time.monotonic() + random.uniform(0, 1.0 / self.settings.ws_rate)
        self._seq = 0

    @task
    def echo(self) -> None:
        if self.ws is None:
            self._connect()
            return
        period = 1.0 / self.settings.ws_rate
        delay = self._next - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        # Fixed-rate schedule; when late (a slow reply), restart it instead of bursting.
        self._next = max(self._next + period, time.monotonic())
        self._seq += 1
        head = f"{self._seq}:"
        message = head + "x" * max(0, self.settings.ws_message_bytes - len(head))
        self._count("started")
        start = time.perf_counter()
        try:
            self.ws.send(message)
            reply = self.ws.recv(timeout=10)
            exc = None if reply == message else RuntimeError("echo mismatch")
        except Exception as e:
            exc = e
        self._count("completed")
        self._fire("/ws/echo [rtt]", (time.perf_counter() - start) * 1000, len(message), exc)
        if exc is not None:
            self.on_stop()


class WsChatUser(_WsUser):
    """WebSocket chat: users in rooms of ``chat_room_size``; each sends ``chat_rate`` msg/s.

    Every message is broadcast to every member of the room in every worker; each receiver
    reports ``WS /ws/chat [fan-out]``: from the sender's clock stamp to its own receipt (same
    host, same clock).
    """

    scenario = "ws_chat"

    def on_start(self) -> None:
        self.user_id = next(_user_ids)
        # Rooms are per process (distributed workers each fill their own).
        size = max(1, settings_for(self.environment).chat_room_size)
        room = f"bench-{os.getpid()}-{self.user_id // size}"
        self.ws_path = f"/ws/chat?room={room}"
        super().on_start()
        self._reader = gevent.spawn(self._read_loop) if self.ws is not None else None
        self._next = time.monotonic()

    def _read_loop(self) -> None:
        ws = self.ws
        try:
            for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                if msg.get("type") != "message":
                    continue
                try:
                    body = json.loads(msg.get("text", ""))
                    sent = float(body["t"])
                except (ValueError, KeyError, TypeError):
                    continue
                self._fire("/ws/chat [fan-out]", max(0.0, (time.time() - sent) * 1000), len(raw))
        except Exception:  # connection closed; the sender side reports it
            pass

    @task
    def chat(self) -> None:
        if self.ws is None:
            self._connect()
            if self.ws is not None:
                self._reader = gevent.spawn(self._read_loop)
            return
        period = 1.0 / self.settings.chat_rate
        delay = self._next - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        self._next = max(self._next + period, time.monotonic())
        self._count("started")
        try:
            self.ws.send(json.dumps({"u": self.user_id, "t": time.time()}))
        except Exception as exc:
            self._count("completed")
            self._fire("/ws/chat [send]", 0, 0, exc)
            self.on_stop()
            return
        self._count("completed")

    def on_stop(self) -> None:
        super().on_stop()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.kill(block=False)
            self._reader = None
