"""Metric names and labels of the contract, recorded by every app; dead-worker handling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector
from service_clients import ServiceClient

from gateway_common import metrics, variants

REPO_ROOT = Path(__file__).resolve().parents[2]


def sample(name: str, labels: dict[str, str]) -> float:
    """Current aggregated value of one series (0 when absent), read like the master does."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    value = registry.get_sample_value(name, labels)
    return value or 0.0


def labels(client: ServiceClient, **extra: str) -> dict[str, str]:
    interface = variants.get(client.service).interface
    return {"service": client.service, "interface": interface, **extra}


def test_request_counter_histogram_and_gauge(client: ServiceClient) -> None:
    counter = labels(client, method="GET", route="/hello", status="200")
    route = labels(client, method="GET", route="/hello")
    before = sample("http_requests_total", counter)
    before_count = sample("http_request_duration_seconds_count", route)
    for _ in range(3):
        client.get("/hello")
    assert sample("http_requests_total", counter) == before + 3
    assert sample("http_request_duration_seconds_count", route) == before_count + 3
    assert sample("http_request_duration_seconds_bucket", {**route, "le": "+Inf"}) >= 3
    assert sample("http_requests_in_progress", route) == 0


def test_route_label_is_the_template_and_unmatched_for_404(client: ServiceClient) -> None:
    io_400 = labels(client, method="GET", route="/io", status="400")
    unmatched = labels(client, method="GET", route="<unmatched>", status="404")
    before_io, before_unmatched = (
        sample("http_requests_total", io_400),
        sample("http_requests_total", unmatched),
    )
    client.get("/io?ms=bad")
    client.get("/no/such/path")
    assert sample("http_requests_total", io_400) == before_io + 1
    assert sample("http_requests_total", unmatched) == before_unmatched + 1


def test_streamed_response_is_counted_when_finished(client: ServiceClient) -> None:
    route = labels(client, method="GET", route="/stream")
    before = sample("http_request_duration_seconds_count", route)
    client.get("/stream?events=2&interval_ms=30")
    assert sample("http_request_duration_seconds_count", route) == before + 1
    assert sample("http_requests_in_progress", route) == 0


def test_head_is_counted_on_the_get_route(client: ServiceClient) -> None:
    counter = labels(client, method="HEAD", route="/hello", status="200")
    before = sample("http_requests_total", counter)
    assert client.request("HEAD", "/hello").status == 200
    assert sample("http_requests_total", counter) == before + 1


def test_flask_error_handling_that_fails_is_counted_as_500(
    flask_client: ServiceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the contract's 500 cannot be built either, the server answers 500 itself: still
    one request, counted once."""

    def explode(*_args: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr("gateway_common.workload.cpu_work", explode)
    monkeypatch.setattr("flask_app.app.internal_error", explode)
    counter = labels(flask_client, method="GET", route="/cpu", status="500")
    before = sample("http_requests_total", counter)
    with pytest.raises(RuntimeError, match="boom"):
        flask_client.get("/cpu?n=5")
    assert sample("http_requests_total", counter) == before + 1
    route = labels(flask_client, method="GET", route="/cpu")
    assert sample("http_requests_in_progress", route) == 0


def test_unknown_methods_share_one_label(client: ServiceClient) -> None:
    other = labels(client, method="OTHER", route="<unmatched>", status="405")
    before = sample("http_requests_total", other)
    assert client.request("BREW", "/hello").status == 405
    assert sample("http_requests_total", other) == before + 1


def test_websocket_metrics(fastapi_test_client: TestClient) -> None:
    base = {"service": "fastapi", "interface": "asgi", "route": "/ws/echo"}
    before_in = sample("websocket_messages_total", {**base, "direction": "in"})
    before_out = sample("websocket_messages_total", {**base, "direction": "out"})
    with fastapi_test_client.websocket_connect("/ws/echo") as ws:
        assert sample("websocket_connections", base) == 1
        ws.send_text("a")
        ws.receive_text()
        ws.send_text("b")
        ws.receive_text()
    assert sample("websocket_connections", base) == 0
    assert sample("websocket_messages_total", {**base, "direction": "in"}) == before_in + 2
    assert sample("websocket_messages_total", {**base, "direction": "out"}) == before_out + 2


def test_server_gauges_take_the_max() -> None:
    metrics.set_server_gauges("flask", "wsgi", workers=3, capacity=12)
    assert sample("server_workers", {"service": "flask", "interface": "wsgi"}) == 3
    assert sample("server_worker_capacity", {"service": "flask", "interface": "wsgi"}) == 12


def test_request_series_are_bound_once_per_method_label_and_route() -> None:
    series = metrics.request_series("fastapi", "asgi", "get", "/hello")
    assert metrics.request_series("fastapi", "asgi", "GET", "/hello") is series
    # Unknown methods share the OTHER series, so junk methods cannot grow the cache.
    brew = metrics.request_series("fastapi", "asgi", "BREW", "/hello")
    assert metrics.request_series("fastapi", "asgi", "PROPFIND", "/hello") is brew
    assert brew is not series


def _series_labels(service: str) -> dict[str, str]:
    return {"service": service, "interface": "wsgi", "method": "GET", "route": "/io"}


def test_request_series_writes_what_the_library_would() -> None:
    """The same requests through RequestSeries and through prometheus_client's own metric
    objects read back alike: counts per status, in-progress, duration sum and every bucket
    (bounds included: a duration equal to a bound is in that bucket)."""
    durations = (0.005, 0.0051, 0.3, 60.0, 61.0)
    statuses = (200, 503, 200, 200, 503)
    series = metrics.request_series("unit-series", "wsgi", "GET", "/io")
    for index, (status, duration_s) in enumerate(zip(statuses, durations, strict=True)):
        threaded = index % 2 == 0  # with and without the lock
        series.started(threaded=threaded)
        series.finished(status, duration_s, threaded=threaded)
    series.started()  # one still in flight
    library = _series_labels("unit-library")
    for status, duration_s in zip(statuses, durations, strict=True):
        metrics.http_requests_total.labels(*library.values(), str(status)).inc()
        metrics.http_request_duration_seconds.labels(*library.values()).observe(duration_s)
    metrics.http_requests_in_progress.labels(*library.values()).inc()

    def read(labels: dict[str, str]) -> dict[str, float]:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return {
            f"{s.name}{sorted((k, v) for k, v in s.labels.items() if k != 'service')}": s.value
            for metric in registry.collect()
            for s in metric.samples
            if s.labels.get("service") == labels["service"]
        }

    ours, theirs = read(_series_labels("unit-series")), read(library)
    assert ours == theirs
    route = _series_labels("unit-series")
    assert sample("http_requests_total", {**route, "status": "200"}) == 3
    assert sample("http_requests_in_progress", route) == 1
    le = {
        b: sample("http_request_duration_seconds_bucket", {**route, "le": b})
        for b in ("0.005", "0.01", "0.25", "0.5", "60.0", "+Inf")
    }
    assert le == {"0.005": 1, "0.01": 2, "0.25": 2, "0.5": 3, "60.0": 4, "+Inf": 5}


def test_forked_child_counts_in_its_own_file_and_keeps_them_when_killed() -> None:
    """A series bound in the parent and used in a forked child (as a middleware's cache would
    be) writes the child's own file; the counts are in the file when the child is SIGKILLed,
    with nothing to flush."""
    route = _series_labels("unit-fork")
    counter = {**route, "status": "200"}
    series = metrics.request_series(*route.values())
    series.started()
    series.finished(200, 0.01)
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: count one request, say so, then wait to be killed
        try:
            series.started()
            series.finished(200, 0.02)
            os.write(ready_write, b"1")
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(ready_write)
    try:
        assert os.read(ready_read, 1) == b"1"
    finally:
        os.close(ready_read)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        # As a server does for a dead worker: its live gauges (the child's files hold every
        # gauge this process had, at 0) must not weigh on later tests' readings.
        metrics.mark_dead(pid)
    assert os.WIFSIGNALED(status)
    assert sample("http_requests_total", counter) == 2
    assert sample("http_request_duration_seconds_sum", route) == pytest.approx(0.03)
    path = metrics.multiproc_dir()
    per_file = {
        file.name: value
        for file in path.glob("counter_*.db")
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(file))
        if json.loads(key)[1:3] == ["http_requests_total", counter]
    }
    assert per_file == {f"counter_{os.getpid()}.db": 1.0, f"counter_{pid}.db": 1.0}


def test_method_label() -> None:
    assert metrics.method_label("get") == "GET"
    assert metrics.method_label("BREW") == "OTHER"


def _in_progress_child(multiproc_dir: Path, hold: bool) -> subprocess.Popen[str]:
    """A process that raises the in-progress gauge and then waits (a busy worker)."""
    code = (
        "import sys\n"
        "from gateway_common import metrics\n"
        "metrics.request_started('fastapi', 'asgi', 'GET', '/io')\n"
        "metrics.http_requests_total.labels('fastapi','asgi','GET','/io','200').inc()\n"
        "print('ready', flush=True)\n"
        f"sys.stdin.read() if {hold} else None\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def test_sweep_marks_killed_workers_and_keeps_their_counts(tmp_path: Path) -> None:
    """What serve_metrics does before each scrape, with two real 'worker' processes."""
    survivor = _in_progress_child(tmp_path, hold=True)
    victim = _in_progress_child(tmp_path, hold=True)
    try:
        registry = CollectorRegistry()
        metrics.SweepingMultiProcessCollector(registry, path=str(tmp_path))
        gauge = {"service": "fastapi", "interface": "asgi", "method": "GET", "route": "/io"}
        counter = {**gauge, "status": "200"}
        assert registry.get_sample_value("http_requests_in_progress", gauge) == 2
        victim.kill()
        victim.wait()
        assert registry.get_sample_value("http_requests_in_progress", gauge) == 1
        assert registry.get_sample_value("http_requests_total", counter) == 2  # not lost
        assert not list(tmp_path.glob(f"gauge_livesum_{victim.pid}.db"))
        assert metrics.sweep_dead_processes(tmp_path) == []  # nothing left to mark
    finally:
        for child in (survivor, victim):
            child.kill()
            child.wait()
            if child.stdin:
                child.stdin.close()
            if child.stdout:
                child.stdout.close()


def test_a_sample_file_being_created_does_not_fail_the_scrape(tmp_path: Path) -> None:
    """A worker's new file is empty for a moment before prometheus_client sizes it."""
    worker = _in_progress_child(tmp_path, hold=False)
    worker.wait()
    (tmp_path / "counter_4194301.db").write_bytes(b"")  # another worker, creating its file
    registry = CollectorRegistry()
    metrics.SweepingMultiProcessCollector(registry, path=str(tmp_path))
    counter = {"service": "fastapi", "interface": "asgi", "method": "GET", "route": "/io"}
    assert registry.get_sample_value("http_requests_total", {**counter, "status": "200"}) == 1
    for child_pipe in (worker.stdin, worker.stdout):
        if child_pipe:
            child_pipe.close()


def test_prepare_multiproc_dir_wipes_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "prom"
    target.mkdir()
    (target / "counter_123.db").write_bytes(b"old")
    (target / "keep.txt").write_text("not a sample")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(target))
    assert metrics.prepare_multiproc_dir() == target
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]


def _import_metrics(env: dict[str, str], code: str = "import gateway_common.metrics") -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    return result.stderr


def test_missing_multiproc_dir_fails_clearly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    assert "PROMETHEUS_MULTIPROC_DIR is not set" in _import_metrics(env)


def test_multiproc_dir_set_too_late_fails_clearly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    code = (
        "import os, prometheus_client\n"
        f"os.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(tmp_path)!r}\n"
        "import gateway_common.metrics\n"
    )
    assert "imported before PROMETHEUS_MULTIPROC_DIR was set" in _import_metrics(env, code)


def test_metrics_are_served_on_their_own_port(tmp_path: Path) -> None:
    """serve_metrics in a child process: the aggregate is on the metrics port."""
    code = (
        "import time, urllib.request\n"
        "from gateway_common import metrics\n"
        "from gateway_common.settings import Bind\n"
        "metrics.prepare_multiproc_dir()\n"
        "metrics.set_server_gauges('flask', 'wsgi', 2, 2)\n"
        "server = metrics.serve_metrics(Bind('127.0.0.1', 0))\n"
        "url = 'http://127.0.0.1:%d/metrics' % server.server_address[1]\n"
        "print(urllib.request.urlopen(url, timeout=10).read().decode())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert 'server_workers{interface="wsgi",service="flask"} 2.0' in result.stdout


def test_fastapi_error_after_the_response_started_reaches_the_server(
    fastapi_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that fails after its first event cannot become a 500 any more: the error goes
    on to the server, which cuts the response off, and the request is counted once, as 500."""
    from fastapi_app.app import create_app
    from fastapi_app.settings import load_asgi_settings

    def explode(*_args: object) -> str:
        raise RuntimeError("stream broke")

    monkeypatch.setattr("gateway_common.responses.sse_end", explode)
    counter = {"service": "fastapi", "interface": "asgi", "method": "GET", "route": "/stream"}
    before = sample("http_requests_total", {**counter, "status": "500"})
    app = create_app(load_asgi_settings(environ=fastapi_env))
    with TestClient(app) as client, pytest.raises(RuntimeError, match="stream broke"):
        client.get("/stream?events=1&interval_ms=0")
    assert sample("http_requests_total", {**counter, "status": "500"}) == before + 1
    assert sample("http_requests_in_progress", counter) == 0
