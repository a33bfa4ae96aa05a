"""Slow clients (slowloris): nginx absorbs them; Gunicorn's sync workers alone would starve.

Through nginx: 200 sockets that trickle their headers or their body a few bytes a second hold
connections at nginx, which buffers whole requests before it passes them on, so the two sync
workers only ever see complete requests and normal traffic stays healthy.

Directly against Gunicorn (what the proxy is there to prevent): a handful of such sockets is
enough to hold both sync workers, and every other request waits. That is the lesson, so it is
asserted as a behaviour too.
"""

from __future__ import annotations

import itertools
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.conftest import StackHandle
from tests.reliability.harness import Load, report

pytestmark = pytest.mark.reliability

HOLD_S = 8.0
TICK_S = 1.0


@dataclass
class SlowClients:
    """`count` sockets that send a request one trickle at a time, then hold it open.

    Half trickle header lines (slow headers), half declare a 60 KB body and trickle it (slow
    body). Source addresses rotate over `sources` (loopback only). Bounded by `hold_s`.
    """

    host: str
    port: int
    count: int
    sources: list[str]
    path_prefix: str = ""
    hold_s: float = HOLD_S
    opened: int = 0
    closed_by_server: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sockets: list[tuple[socket.socket, str]] = []

    def _open(self) -> None:
        sources = itertools.cycle(self.sources)
        for index in range(self.count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((next(sources), 0))
            sock.settimeout(5)
            try:
                sock.connect((self.host, self.port))
            except OSError as exc:
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                sock.close()
                continue
            if index % 2 == 0:
                head = f"GET {self.path_prefix}/hello HTTP/1.1\r\nHost: slow\r\n"
                mode = "headers"
            else:
                head = (
                    f"POST {self.path_prefix}/echo HTTP/1.1\r\nHost: slow\r\n"
                    "Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{"
                )
                mode = "body"
            sock.sendall(head.encode())
            sock.setblocking(False)
            self._sockets.append((sock, mode))
            self.opened += 1

    def _run(self) -> None:
        self._open()
        deadline = time.monotonic() + self.hold_s
        selector = selectors.DefaultSelector()
        while not self._stop.is_set() and time.monotonic() < deadline:
            for sock, mode in list(self._sockets):
                try:
                    sock.send(b"X-Slow: 1\r\n" if mode == "headers" else b" ")
                except OSError:
                    self._drop(sock, mode)
            self._stop.wait(TICK_S)
            # A server that gave up on a socket closes it (or answers 408): count those.
            for sock, _mode in list(self._sockets):
                selector.register(sock, selectors.EVENT_READ)
            for key, _ in selector.select(timeout=0):
                sock = key.fileobj
                try:
                    data = sock.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/1.1 4"):
                    self._drop(sock, dict(self._sockets)[sock])  # type: ignore[index]
            for key in list(selector.get_map().values()):
                selector.unregister(key.fileobj)
        selector.close()

    def _drop(self, sock: socket.socket, mode: str) -> None:
        self._sockets.remove((sock, mode))
        self.closed_by_server += 1
        sock.close()

    @property
    def still_open(self) -> int:
        return len(self._sockets)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.hold_s + 10)
        for sock, _ in self._sockets:
            sock.close()


def test_slow_clients_through_nginx_do_not_starve_the_sync_workers(chaos_stack: StackHandle):
    stack = chaos_stack
    sources = [f"127.0.1.{i}" for i in range(1, 21)]  # 20 "clients", 10 sockets each
    paths = ["/wsgi/hello", "/wsgi/io?ms=20"]
    with Load(stack.public_url, paths, threads=4, max_duration_s=40, timeout_s=5) as load:
        time.sleep(3)
        load.mark("attack")
        with SlowClients(
            "127.0.0.1", stack.settings.ports["public"], 200, sources, "/wsgi"
        ) as slow:
            time.sleep(HOLD_S - 0.5)
            load.mark("attack_end")
            held = slow.still_open
        time.sleep(2)
    before = load.window("start", "attack")
    during = load.window("attack", "attack_end")
    duration_before = load.marks["attack"] - load.marks["start"]
    duration_during = load.marks["attack_end"] - load.marks["attack"]
    report(
        "slow clients through nginx (200 slowloris sockets from 20 loopback addresses, half slow "
        f"headers, half slow bodies, held {HOLD_S:.0f} s; 4 normal clients on "
        f"{', '.join(paths)})",
        f"before:  {before.describe()}; {before.sent / duration_before:.0f} req/s",
        f"during:  {during.describe()}; {during.sent / duration_during:.0f} req/s",
        f"slow sockets opened {slow.opened}, still held open by nginx at the end {held}, "
        f"connect errors {slow.errors or 0}",
    )
    assert slow.opened == 200 and held >= 150  # nginx holds them (it cuts slow headers at 10 s)
    assert during.sent > 50 and not during.failed, during.failed[:5]
    assert during.count(200) == during.sent
    assert during.percentile(0.95) < 0.5
    assert during.sent / duration_during > 0.5 * before.sent / duration_before


def test_slow_clients_directly_against_gunicorn_starve_it(chaos_stack: StackHandle):
    """The reason a buffering proxy is mandatory in front of sync workers."""
    stack = chaos_stack
    direct = stack.settings.url("wsgi")
    baseline = _probe(direct, 5, timeout_s=2.0)
    with SlowClients("127.0.0.1", stack.settings.ports["wsgi"], 10, ["127.0.0.1"]) as slow:
        time.sleep(1.0)
        starved = _probe(direct, 5, timeout_s=1.0)
        through_nginx = _probe(stack.public_url + "/wsgi", 3, timeout_s=1.0)
    time.sleep(0.5)
    recovered = _probe(direct, 5, timeout_s=2.0)
    report(
        "slow clients directly against Gunicorn (10 slowloris sockets on the 2 sync workers' "
        "own port, no nginx in front)",
        f"before:   {_describe(baseline)}",
        f"during:   {_describe(starved)} (direct); {_describe(through_nginx)} (through nginx, "
        "which proxies to the same starved workers)",
        f"after the slow sockets close: {_describe(recovered)}; slow sockets opened {slow.opened}",
    )
    assert all(outcome == 200 for outcome, _ in baseline)
    assert all(outcome == "ReadTimeout" for outcome, _ in starved), starved
    assert all(outcome == 200 for outcome, _ in recovered)


def _probe(base_url: str, count: int, timeout_s: float) -> list[tuple[int | str, float]]:
    results: list[tuple[int | str, float]] = []
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        for _ in range(count):
            started = time.monotonic()
            try:
                outcome: int | str = client.get("/hello").status_code
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            results.append((outcome, time.monotonic() - started))
    return results


def _describe(results: list[tuple[int | str, float]]) -> str:
    outcomes: dict[str, int] = {}
    for outcome, _ in results:
        outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
    slowest = max(elapsed for _, elapsed in results) * 1000
    spread = ", ".join(f"{k}: {v}" for k, v in outcomes.items())
    return f"{len(results)} requests ({spread}), slowest {slowest:.0f} ms"
