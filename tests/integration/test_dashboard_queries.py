"""Every Grafana panel query returns data on the real native stack.

Grafana runs only in Docker mode, so its dashboards are proven here, without it: real traffic
goes through nginx to both services (HTTP routes, 4xx answers, a server-sent-events stream,
WebSocket echo and chat), a short headless Locust run registers itself with Prometheus through
file discovery, and then every query of every panel of every dashboard, and every template
variable's query, is evaluated through the Prometheus HTTP API with the variables set to "All"
(as Grafana would send them) and must return at least one sample.

The only queries allowed to return nothing are the Docker-only panels named in
monitoring/grafana/build_dashboards.py (DOCKER_ONLY_PANELS: cAdvisor runs only in Docker mode),
and each of them must really be empty here, so the list can neither hide a broken panel nor
go stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import websockets

from monitoring.grafana import build_dashboards as builder
from tests import dashboard_queries as readback
from tests.conftest import TEST_VARIANTS, StackHandle

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "monitoring" / "grafana"
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"

TRAFFIC_MAX_S = 180  # hard bound of the background traffic, whatever happens
LOCUST_RUN_TIME_S = 150  # hard bound of the Locust run (it is stopped as soon as we are done)
DATA_TIMEOUT_S = 90  # for the first scrapes and rule evaluations to carry the traffic
EMPTY_RETRY_S = 30  # extra time for a query that is still empty after that


# ---- traffic ------------------------------------------------------------------------------


class Traffic:
    """HTTP and WebSocket traffic through nginx from a background thread, until stopped.

    WebSockets stay open while it runs, so the connection gauges read more than zero when the
    queries run; HTTP requests keep some requests in flight at every scrape.
    """

    HTTP_WORKERS_PER_SERVICE = 4
    ECHO_SOCKETS = 2
    CHAT_SOCKETS = 3

    def __init__(self, public_url: str) -> None:
        self.public_url = public_url
        self.ws_base = public_url.replace("http://", "ws://", 1)
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.ws_messages: Counter[str] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(asyncio.wait_for(self._main(), timeout=TRAFFIC_MAX_S))
        except TimeoutError:
            pass
        except Exception as exc:  # reported by the test, not lost in a thread
            self.errors.append(f"traffic: {exc!r}")

    async def _main(self) -> None:
        async with httpx.AsyncClient(base_url=self.public_url, timeout=30) as client:
            tasks = [
                self._http_worker(client, prefix, n)
                for prefix in ("/wsgi", "/asgi")
                for n in range(self.HTTP_WORKERS_PER_SERVICE)
            ]
            tasks += [self._echo(n) for n in range(self.ECHO_SOCKETS)]
            tasks += [self._chat(n) for n in range(self.CHAT_SOCKETS)]
            await asyncio.gather(*tasks)

    def _requests(self, prefix: str, n: int):
        """One round of requests: every route, some deliberately wrong (4xx)."""
        yield "GET", f"{prefix}/hello", None
        yield "GET", f"{prefix}/healthz", None
        yield "GET", f"{prefix}/io?ms=50", None
        yield "GET", f"{prefix}/cpu?n=10000", None
        yield "POST", f"{prefix}/echo", {"message": f"hello {n}", "tags": ["dashboards"]}
        yield "GET", f"{prefix}/stream?events=3&interval_ms=20", None
        yield "GET", f"{prefix}/io?ms=abc", None  # 400 invalid_parameter
        yield "POST", f"{prefix}/echo", {"unexpected": 1}  # 422 invalid_body
        yield "GET", f"{prefix}/no-such-route", None  # 404 <unmatched>
        if prefix == "/asgi":
            yield "GET", f"{prefix}/io/threadpool?ms=20", None
            yield "GET", f"{prefix}/io/blocking?ms=5", None

    async def _http_worker(self, client: httpx.AsyncClient, prefix: str, n: int) -> None:
        while not self._stop.is_set():
            for method, path, body in self._requests(prefix, n):
                if self._stop.is_set():
                    return
                try:
                    response = await client.request(method, path, json=body)
                    self.statuses[(prefix, response.status_code)] += 1
                except httpx.HTTPError as exc:
                    self.errors.append(f"{method} {path}: {exc!r}")
                    await asyncio.sleep(0.5)

    async def _echo(self, n: int) -> None:
        async with websockets.connect(f"{self.ws_base}/asgi/ws/echo", open_timeout=10) as ws:
            while not self._stop.is_set():
                await ws.send(f"echo {n}")
                reply = await asyncio.wait_for(ws.recv(), timeout=10)
                assert reply == f"echo {n}", reply
                self.ws_messages["echo"] += 1
                await asyncio.sleep(0.1)

    async def _chat(self, n: int) -> None:
        url = f"{self.ws_base}/asgi/ws/chat?room=dashboards"
        async with websockets.connect(url, open_timeout=10) as ws:
            joined = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert joined["type"] == "joined", joined

            async def read() -> None:
                async for raw in ws:
                    if json.loads(raw).get("type") == "message":
                        self.ws_messages["chat received"] += 1

            reader = asyncio.create_task(read())
            try:
                while not self._stop.is_set():
                    await ws.send(f"hello from {n}")
                    self.ws_messages["chat sent"] += 1
                    await asyncio.sleep(0.2)
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader


@contextlib.contextmanager
def locust_run(stack: StackHandle, log_path: Path):
    """A small headless Locust run (3 users on the WSGI /io scenario), bounded in time.

    It exports its statistics on the stack's Locust metrics port and announces itself to
    Prometheus by writing locust.json into the file-discovery directory, as a real load test
    does; stopping it (SIGINT, then SIGKILL) makes it remove that file.
    """
    port = stack.settings.ports["locust_metrics"]
    env = {
        **os.environ,
        "LOCUST_METRICS_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_TARGETS_DIR": str(stack.targets_dir),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        stack.public_url,
        "--users",
        "3",
        "--spawn-rate",
        "3",
        "--run-time",
        f"{LOCUST_RUN_TIME_S}s",
        "--stop-timeout",
        "5",
        "--only-summary",
        "--target",
        "wsgi",
        "--io-ms",
        "50",
        "IoUser",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


# ---- evaluating the dashboards --------------------------------------------------------------


def wait_until(stack: StackHandle, expr: str, timeout_s: float) -> list:
    return stack.wait_for(expr, lambda result: bool(result), timeout_s=timeout_s)


def evaluate(stack: StackHandle, queries: list[tuple[str, object]]) -> dict:
    """(promql, query) -> result vector, or the error Prometheus answered."""
    results = {}
    for expr, query in queries:
        try:
            results[query] = stack.query(expr)
        except (OSError, AssertionError) as exc:  # HTTP 400 for a bad query lands here
            results[query] = exc
    return results


def every_query() -> list[tuple[str, object]]:
    boards = readback.load_dashboards()
    return [
        (readback.promql(board, query), query)
        for board in boards.values()
        for query in readback.variable_queries(board) + readback.panel_queries(board)
    ]


def test_every_dashboard_query_returns_data_on_the_native_stack(stack: StackHandle, tmp_path):
    if not LOCUSTFILE.exists():
        pytest.fail(f"{LOCUSTFILE} is missing: the Locust panels cannot be proven", pytrace=False)
    queries = every_query()
    assert len(queries) > 50, "the dashboards lost their queries?"
    docker_only = builder.DOCKER_ONLY_PANELS

    with Traffic(stack.public_url) as traffic, locust_run(stack, tmp_path / "locust.log") as lr:
        # The first scrapes (5 s) and rule evaluations (5 s) of real traffic, and the Locust
        # target found through file discovery.
        for expr in (
            'up{job="locust"} == 1',
            'sum by (target) (rate(locust_requests_total{target="wsgi"}[1m])) > 0',
            'service:http_requests:rate1m{service="flask"} > 0',
            'service:http_requests:rate1m{service="fastapi"} > 0',
            "service_route_direction:websocket_messages:rate1m > 0",
            "service:server_worker_saturation:ratio_avg1m",
        ):
            try:
                wait_until(stack, expr, DATA_TIMEOUT_S)
            except AssertionError as exc:
                log = (tmp_path / "locust.log").read_text()[-3000:]
                pytest.fail(f"{exc}\ntraffic errors: {traffic.errors[:5]}\nlocust log:\n{log}")
        assert lr.poll() is None, (tmp_path / "locust.log").read_text()[-3000:]

        results = evaluate(stack, queries)
        deadline = time.monotonic() + EMPTY_RETRY_S
        while time.monotonic() < deadline:
            retry = [
                (expr, q)
                for expr, q in queries
                if q.key not in docker_only and (not isinstance(results[q], list) or not results[q])
            ]
            if not retry:
                break
            time.sleep(5)
            results.update(evaluate(stack, retry))

        # While the sockets are still open: the gauges see them.
        # Polled: on a busy 2-core machine one slow scrape can leave the series briefly stale.
        open_sockets = stack.wait_for(
            'sum(service_route:websocket_connections:sum{route="/ws/chat"})',
            lambda r: bool(r) and float(r[0]["value"][1]) >= Traffic.CHAT_SOCKETS,
            timeout_s=20,
        )
        in_flight = stack.query("service:http_requests_in_progress:sum")

    failed = {q: r for q, r in results.items() if not isinstance(r, list)}
    assert not failed, "queries Prometheus refused:\n" + "\n".join(
        f"  {q.dashboard} / {q.panel} / {q.ref}: {r}" for q, r in failed.items()
    )
    empty = {q.key for q, r in results.items() if not r}
    expressions = {q.key: expr for expr, q in queries}
    unexpected = sorted(empty - docker_only)
    assert not unexpected, "panels with no data on the native stack:\n" + "\n".join(
        f"  {uid} / {title}: {expressions[(uid, title)]}" for uid, title in unexpected
    )
    # The Docker-only list is exact: each entry is a real panel that really is empty here.
    assert docker_only <= {q.key for _, q in queries}, "DOCKER_ONLY_PANELS names unknown panels"
    not_empty = sorted(docker_only - empty)
    assert not not_empty, f"listed as Docker-only but has data natively: {not_empty}"

    # The traffic really was what the dashboards show.
    assert not traffic.errors, traffic.errors[:10]
    for prefix in ("/wsgi", "/asgi"):
        assert traffic.statuses[(prefix, 200)] > 0, traffic.statuses
        assert traffic.statuses[(prefix, 400)] > 0, traffic.statuses
        assert traffic.statuses[(prefix, 404)] > 0, traffic.statuses
    assert traffic.ws_messages["echo"] > 0 and traffic.ws_messages["chat received"] > 0
    assert open_sockets and float(open_sockets[0]["value"][1]) >= Traffic.CHAT_SOCKETS
    # One series per running variant (the test stack runs them all; the traffic hits two).
    assert {s["metric"]["service"] for s in in_flight} == {v.name for v in TEST_VARIANTS}
    # One series per service, summed over its replicas: no `instance` left to split them.
    assert all("instance" not in s["metric"] for s in in_flight), in_flight


def test_locust_target_leaves_prometheus_file_discovery_after_the_run(stack: StackHandle):
    """Between load tests there is no Locust target at all (so no TargetDown for it)."""
    assert not list(stack.targets_dir.glob("locust*.json"))
    stack.wait_for('up{job="locust"}', lambda result: not result, timeout_s=30)
