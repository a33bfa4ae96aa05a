"""Locust user classes: one per scenario, each aimed at one target (a server variant's prefix).

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
import gevent.pool
from locust import User, constant, task
from locust.contrib.fasthttp import FastHttpSession, FastHttpUser
from locust.exception import StopUser
from websockets.sync.client import connect as ws_connect

from loadtests import poll_messages
from loadtests.settings import OPEN_MAX_IN_FLIGHT, ScenarioSettings, applicable, http_path, ws_url

log = logging.getLogger("loadtests")

#: (target, scenario, what) -> count, what in {"started", "completed", "gateway_error"}.
#: "gateway_error" counts 502/503/504 answers, which nginx may have produced on its own.
COUNTS: Counter[tuple[str, str, str]] = Counter()

_user_ids = itertools.count()
_rooms = itertools.count()
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
                    "scenario %s is not applicable to target %s (the variant has no "
                    "WebSockets); its users stop at once",
                    self.scenario,
                    self.target,
                )
            raise StopUser()

    def _count(self, what: str, n: int = 1) -> None:
        COUNTS[(self.target, self.scenario, what)] += n


def _answered(target: str, scenario: str, status: int) -> None:
    COUNTS[(target, scenario, "completed")] += 1
    if status in (502, 503, 504):
        COUNTS[(target, scenario, "gateway_error")] += 1


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
            _answered(self.target, self.scenario, resp.status_code)
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")


class HelloUser(_GatewayHttpUser):
    """GET /hello back-to-back: the per-request overhead of each stack."""

    scenario = "hello"

    @task
    def hello(self) -> None:
        self._get(http_path(self.scenario, self.settings), "/hello")


class IoUser(_GatewayHttpUser):
    """GET /io?ms=100 back-to-back: waiting, not computing. Sync workers block while waiting."""

    scenario = "io"

    @task
    def io(self) -> None:
        self._get(http_path(self.scenario, self.settings), "/io")


class CpuUser(_GatewayHttpUser):
    """GET /cpu?n=... back-to-back: pure-Python work, bounded by cores and the GIL."""

    scenario = "cpu"

    @task
    def cpu(self) -> None:
        self._get(http_path(self.scenario, self.settings), "/cpu")


class PollRoom:
    """The poll scenario's room: its publisher, and what the pollers received.

    The publisher posts ``poll_rate`` messages per second (a fixed schedule) to the room until
    stopped. ``published`` holds (seq, time sent) per message; ``answers`` holds (time answered,
    seq or None for a 204, delivery ms or None) per poll answered. Publishes count as requests of
    the scenario, as the server's counter of the route counts them too.
    """

    def __init__(self, environment, host: str) -> None:
        self.settings = settings_for(environment)
        self.name = f"bench-{os.getpid()}-{next(_rooms)}"
        self.path = f"{self.settings.prefix}/poll?room={self.name}"
        self.published: list[tuple[int, float]] = []
        self.answers: list[tuple[float, int | None, float | None]] = []
        self._session = FastHttpSession(host, environment.events.request, user=None)
        self._greenlet = gevent.spawn(self._publish)

    def _publish(self) -> None:
        target, period = self.settings.target, 1.0 / self.settings.poll_rate
        due, seq = time.monotonic(), 0
        while True:
            gevent.sleep(max(0.0, due - time.monotonic()))
            due = max(due + period, time.monotonic())  # late: restart the schedule, no burst
            seq += 1
            now = time.time()
            # Recorded before it is sent: a waiting poll may be answered before the POST is.
            self.published.append((seq, now))
            COUNTS[(target, "poll", "started")] += 1
            text = poll_messages.message_text(seq)
            with self._session.post(
                self.path, json={"text": text}, name="/poll [publish]", catch_response=True
            ) as resp:
                _answered(target, "poll", resp.status_code)
                if not 200 <= resp.status_code < 300:
                    resp.failure(f"HTTP {resp.status_code}")

    def stop(self) -> None:
        self._greenlet.kill(block=False)


def poll_room_for(environment, host: str) -> PollRoom:
    """The environment's room; the first poller to start opens it (and its publisher)."""
    room = getattr(environment, "gateway_poll", None)
    if room is None:
        room = environment.gateway_poll = PollRoom(environment, host)
    return room


class PollUser(_GatewayHttpUser):
    """Long polling: ``GET /poll?room=R&timeout_ms=N`` back-to-back, every user in one room.

    Each poll waits on the server until the publisher's next message (200) or its timeout (204).
    A sync worker is held for the whole wait, so a variant of capacity C has at most C polls
    waiting and receiving each message; the others queue. Reported as ``GET /poll`` (each poll,
    queueing included) and ``POLL /poll [delivery]`` (from a message's sending to its receipt).
    """

    scenario = "poll"

    def on_start(self) -> None:
        super().on_start()
        self.room = poll_room_for(self.environment, self.host or "")

    @task
    def poll(self) -> None:
        path = f"{self.room.path}&timeout_ms={self.settings.poll_timeout_ms}"
        self._count("started")
        with self.client.get(path, name="/poll", catch_response=True) as resp:
            done = time.time()
            _answered(self.target, self.scenario, resp.status_code)
            if resp.status_code == 204:
                self.room.answers.append((done, None, None))
            elif resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
            elif (got := poll_messages.read_answer(resp.text or "")) is None:
                resp.failure("200 without the bench's message")
            else:
                delivery_ms = max(0.0, (done - got.sent_at) * 1000)
                self.room.answers.append((done, got.seq, delivery_ms))
                self.environment.events.request.fire(
                    request_type="POLL",
                    name="/poll [delivery]",
                    response_time=delivery_ms,
                    response_length=0,
                    exception=None,
                    context={},
                )


class OpenSchedule:
    """The open model's offered rate (the bench changes it between steps) and what it recorded.

    ``sent`` holds the scheduled time of every request sent; ``answered`` holds (answer time,
    latency from the scheduled send in ms) of every answer, failed or not.
    """

    def __init__(self, rps: float) -> None:
        self.rps = rps
        self.sent: list[float] = []
        self.answered: list[tuple[float, float]] = []


def schedule_for(environment) -> OpenSchedule:
    schedule = getattr(environment, "gateway_schedule", None)
    if schedule is None:
        schedule = OpenSchedule(float(os.environ.get("LOCUST_OPEN_RPS") or 10))
        environment.gateway_schedule = schedule
    return schedule


class _OpenHttpUser(_Gateway, FastHttpUser):
    """Open model: one user sends its scenario's request on a fixed schedule at the offered rate.

    Each request goes out at its scheduled time in a greenlet of its own, whether or not the
    earlier ones were answered, and its latency is timed from that scheduled time: a server that
    falls behind shows as growing latency and a backlog, not as a slower client (no coordinated
    omission). A scheduler that is itself late sends what is due at once rather than skipping.
    """

    abstract = True
    wait_time = constant(0)
    #: Connections the user may open, one per request in flight.
    concurrency = OPEN_MAX_IN_FLIGHT

    def on_start(self) -> None:
        self._setup_target()
        self.schedule = schedule_for(self.environment)
        self.in_flight = gevent.pool.Group()

    @task
    def run_schedule(self) -> None:
        """Send at start + k / rate for k = 0, 1, ... until the rate changes."""
        rps = self.schedule.rps
        start_mono, start_wall = time.monotonic(), time.time()
        k = 0
        while self.schedule.rps == rps:
            due = k / rps
            delay = start_mono + due - time.monotonic()
            gevent.sleep(max(0.0, delay))  # 0 still yields to the requests in flight
            self.in_flight.spawn(self._send, start_mono + due, start_wall + due)
            k += 1

    def _send(self, due_mono: float, due_wall: float) -> None:
        self.schedule.sent.append(due_wall)
        self._count("started")
        name = f"/{self.scenario}"
        path = self.prefix + http_path(self.scenario, self.settings)
        with self.client.get(path, name=name, catch_response=True) as resp:
            latency_ms = (time.monotonic() - due_mono) * 1000
            # Timed from the schedule, not from when the connection got to send it.
            resp.request_meta["response_time"] = latency_ms
            resp.request_meta["start_time"] = due_wall
            _answered(self.target, self.scenario, resp.status_code)
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
        self.schedule.answered.append((time.time(), latency_ms))

    def on_stop(self) -> None:
        # Requests still in flight when the run stops are abandoned (counted as started only).
        self.in_flight.kill(block=False)


class OpenHelloUser(_OpenHttpUser):
    scenario = "hello"


class OpenIoUser(_OpenHttpUser):
    scenario = "io"


class OpenCpuUser(_OpenHttpUser):
    scenario = "cpu"


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
        raw = getattr(resp, "_response", None)
        read = _SseRead(start)
        try:
            if resp.status_code != 200 or raw is None:
                raise RuntimeError(f"HTTP {resp.status_code}")
            read.read(raw, s.stream_events)
        except Exception as exc:  # reported as a Locust failure
            read.error = exc
            # Unread data on the connection: never reuse it.
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.release()
        finally:
            self._count("completed")
            if resp.status_code in (502, 503, 504):
                self._count("gateway_error")
        self._report(read, start_wall, (time.perf_counter() - start) * 1000)

    def _report(self, read: _SseRead, start_wall: float, total_ms: float) -> None:
        fire = self.environment.events.request.fire
        common = {
            "request_type": "SSE",
            "response_length": read.ticks,
            "context": {},
            "start_time": start_wall,
        }
        fire(
            name="/stream [first event]",
            response_time=read.first_ms if read.first_ms is not None else total_ms,
            exception=read.error if read.first_ms is None else None,
            **common,
        )
        fire(name="/stream [complete]", response_time=total_ms, exception=read.error, **common)


class _SseRead:
    """One stream read to its ``end`` event: the ticks seen and the time to the first one."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.first_ms: float | None = None
        self.ticks = 0
        self.error: Exception | None = None

    def read(self, raw, expected: int) -> None:
        """Read events until ``end``; raise when the stream stops early or miscounts."""
        event = None
        while line := raw.readline(b"\n"):
            line = line.rstrip(b"\r\n")
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line == b"" and event is not None:
                if event == b"end":
                    if self.ticks != expected:
                        raise RuntimeError(f"got {self.ticks} events, expected {expected}")
                    return
                if event == b"tick":
                    self.ticks += 1
                    if self.first_ms is None:
                        self.first_ms = (time.perf_counter() - self.start) * 1000
                event = None
        raise RuntimeError(f"stream ended after {self.ticks} of {expected} events")


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
