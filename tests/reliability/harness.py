"""Helpers of the reliability tests: the chaos stack's control, closed-loop load, figures, metrics.

Imported as `tests.reliability.harness` by the tests *and* by this folder's conftest, so the
figures recorded by the tests are the ones the end-of-run summary prints.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import pytest

from stackctl.settings import REPO_ROOT

CHAOS_PROFILE = "chaos"
CHAOS_START_TIMEOUT_S = 180
FIGURES: list[tuple[str, list[str]]] = []


def chaos_env() -> dict[str, str]:
    """The chaos stack's environment: never the offset or state dir meant for the test profile.

    CHAOS_PORT_OFFSET / CHAOS_STATE_DIR move the chaos stack itself (two sessions on a machine).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("STACK_PORT_OFFSET", "STATE_DIR")}
    for source, target in (
        ("CHAOS_PORT_OFFSET", "STACK_PORT_OFFSET"),
        ("CHAOS_STATE_DIR", "STATE_DIR"),
    ):
        if os.environ.get(source):
            env[target] = os.environ[source]
    return env


def chaosctl(
    *args: str, timeout: float = CHAOS_START_TIMEOUT_S, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m stackctl --stack native --profile chaos ARGS` (what `make reload` etc. run)."""
    return subprocess.run(
        [sys.executable, "-m", "stackctl", "--stack", "native", "--profile", CHAOS_PROFILE, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**chaos_env(), **(env or {})},
    )


def ensure_up() -> None:
    started = chaosctl("up")
    if started.returncode != 0:
        logs = chaosctl("logs", "--lines", "30", timeout=30).stdout
        pytest.fail(
            f"chaos stack did not start:\n{started.stdout}\n{started.stderr}\n{logs}",
            pytrace=False,
        )


# --------------------------------------------------------------------------- figures


def report(title: str, *lines: str) -> None:
    """Record figures for the end-of-run summary (and print them now, for `pytest -s`)."""
    FIGURES.append((title, list(lines)))
    print(f"\n[reliability] {title}")
    for line in lines:
        print(f"    {line}")


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic()
    latency_s: float
    path: str
    status: int | None  # None: no HTTP answer (connection error, timeout)
    error: str | None = None
    retried: bool = False  # sent again after the server closed an idle keep-alive connection


@dataclass
class Window:
    """The samples whose request started in [start, end)."""

    samples: list[Sample]

    @property
    def sent(self) -> int:
        return len(self.samples)

    def count(self, *statuses: int) -> int:
        return sum(1 for s in self.samples if s.status in statuses)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if s.status is None or s.status >= 500]

    def percentile(self, q: float) -> float:
        latencies = sorted(s.latency_s for s in self.samples)
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    def describe(self) -> str:
        if not self.samples:
            return "no requests"
        statuses: dict[str, int] = {}
        for s in self.samples:
            key = str(s.status) if s.status is not None else (s.error or "error")
            statuses[key] = statuses.get(key, 0) + 1
        spread = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        retried = sum(1 for s in self.samples if s.retried)
        if retried:
            spread += f"; {retried} resent after a keep-alive close"
        return (
            f"{self.sent} sent, {len(self.failed)} failed ({spread}); latency "
            f"p50 {self.percentile(0.5) * 1000:.1f} ms, p95 {self.percentile(0.95) * 1000:.1f} ms, "
            f"max {max(s.latency_s for s in self.samples) * 1000:.1f} ms"
        )


@dataclass
class Load:
    """Closed-loop load: `threads` clients, each sending the next request when one answers.

    Bounded twice: it stops at `max_requests` and after `max_duration_s`, whichever comes first.
    `local_address` binds the clients' source address (loopback 127.0.0.0/8 only).
    """

    base_url: str
    paths: Sequence[str]
    threads: int = 4
    max_requests: int = 20_000
    max_duration_s: float = 60.0
    timeout_s: float = 15.0
    local_address: str | None = None
    samples: list[Sample] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _run(self, offset: int) -> None:
        transport = httpx.HTTPTransport(local_address=self.local_address)
        deadline = time.monotonic() + self.max_duration_s
        with httpx.Client(base_url=self.base_url, timeout=self.timeout_s, transport=transport) as c:
            index = offset
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if len(self.samples) >= self.max_requests:
                        return
                path = self.paths[index % len(self.paths)]
                index += 1
                started = time.monotonic()
                status, error, retried = self._get(c, path)
                sample = Sample(started, time.monotonic() - started, path, status, error, retried)
                with self._lock:
                    self.samples.append(sample)

    @staticmethod
    def _get(client: httpx.Client, path: str) -> tuple[int | None, str | None, bool]:
        """GET `path` as a compliant HTTP/1.1 client does (RFC 9112, section 9.3.1).

        A server may close an idle keep-alive connection just as the next request goes out on
        it (nginx does so for every idle connection of an old worker on reload). The request
        got no answer at all, so a client resends an idempotent one once, on a new connection,
        as browsers do. Any other error, or a second failure, counts as failed.
        """
        for attempt in range(2):
            try:
                return client.get(path).status_code, None, attempt > 0
            except httpx.RemoteProtocolError as exc:
                if attempt or "without sending a response" not in str(exc):
                    return None, type(exc).__name__, attempt > 0
            except httpx.HTTPError as exc:
                return None, type(exc).__name__, attempt > 0
        raise AssertionError("unreachable")

    def __enter__(self) -> Load:
        self.marks["start"] = time.monotonic()
        for offset in range(self.threads):
            worker = threading.Thread(target=self._run, args=(offset,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout_s + 5)
        self.marks["end"] = time.monotonic()

    def mark(self, name: str) -> float:
        self.marks[name] = now = time.monotonic()
        return now

    def window(self, start: str = "start", end: str = "end", path: str | None = None) -> Window:
        lo = self.marks.get(start, float("-inf"))
        hi = self.marks.get(end, float("inf"))
        with self._lock:
            chosen = [
                s
                for s in self.samples
                if lo <= s.started < hi and (path is None or s.path.startswith(path))
            ]
        return Window(chosen)

    def all(self, path: str | None = None) -> Window:
        return self.window("start", "end", path)


def wait_until(predicate, timeout_s: float, interval_s: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"{what} not reached within {timeout_s} s")


def rate(window: Window, seconds: float) -> float:
    return window.sent / seconds if seconds > 0 else float("nan")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- metrics


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: {(name, sorted labels): value}."""
    # Imported here, not at collection: prometheus_client picks its mode when first imported,
    # and the unit tests' conftest must set PROMETHEUS_MULTIPROC_DIR before that happens.
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url, timeout=10).text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def metric_sum(samples: dict, name: str, **labels: str) -> float:
    total = 0.0
    for (sample_name, sample_labels), value in samples.items():
        if sample_name != name:
            continue
        label_map = dict(sample_labels)
        if all(label_map.get(k) == v for k, v in labels.items()):
            total += value
    return total
