"""Hardening: nothing internal is reachable through the public port, however the request is
spelled; Prometheus's admin and lifecycle APIs are off; the deployment files keep it that way."""

from __future__ import annotations

import socket

import httpx
import pytest
import yaml

from stackctl.settings import REPO_ROOT
from tests.conftest import StackHandle
from tests.reliability.harness import report

pytestmark = pytest.mark.reliability

INTERNAL_MARKERS = ("http_requests_total", "Active connections", "prometheus_build_info", "# HELP")


def _raw(port: int, request: str) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and len(data) > 200:
                break
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_internal_endpoints_are_unreachable_however_the_request_is_spelled(
    chaos_stack: StackHandle,
):
    ports = chaos_stack.settings.ports
    public = ports["public"]
    attempts = {
        "dot-dot": "GET /wsgi/../metrics HTTP/1.1\r\nHost: lab\r\n",
        "encoded dot-dot": "GET /asgi/%2e%2e/metrics HTTP/1.1\r\nHost: lab\r\n",
        "double slash": "GET //stub_status HTTP/1.1\r\nHost: lab\r\n",
        "absolute URI to the metrics port": (
            f"GET http://127.0.0.1:{ports['wsgi_metrics']}/metrics HTTP/1.1\r\nHost: lab\r\n"
        ),
        "Host of the status port": (
            f"GET /stub_status HTTP/1.1\r\nHost: 127.0.0.1:{ports['nginx_status']}\r\n"
        ),
        "Prometheus API": "GET /api/v1/status/config HTTP/1.1\r\nHost: lab\r\n",
        "service metrics under the prefix": "GET /asgi/metrics HTTP/1.1\r\nHost: lab\r\n",
    }
    seen = {}
    for name, head in attempts.items():
        status, body = _raw(public, head + "Connection: close\r\n\r\n")
        seen[name] = status
        assert status in (400, 404), (name, status, body[:200])
        assert not any(marker in body for marker in INTERNAL_MARKERS), (name, body[:200])
    report("internal endpoints through the public port", str(seen))


def test_prometheus_admin_and_lifecycle_apis_are_off(chaos_stack: StackHandle):
    base = chaos_stack.prometheus_url
    snapshot = httpx.post(f"{base}/api/v1/admin/tsdb/snapshot", timeout=10)
    delete = httpx.post(
        f"{base}/api/v1/admin/tsdb/delete_series", params={"match[]": "up"}, timeout=10
    )
    quit_ = httpx.post(f"{base}/-/quit", timeout=10)
    reload_ = httpx.post(f"{base}/-/reload", timeout=10)
    report(
        "Prometheus admin/lifecycle APIs",
        f"snapshot {snapshot.status_code}, delete_series {delete.status_code}, "
        f"/-/quit {quit_.status_code}, /-/reload {reload_.status_code}",
    )
    assert snapshot.status_code >= 400 and "admin APIs disabled" in snapshot.text
    assert delete.status_code >= 400 and "admin APIs disabled" in delete.text
    assert quit_.status_code == 403 and reload_.status_code == 403
    assert httpx.get(f"{base}/-/ready", timeout=10).status_code == 200  # still running


def test_compose_keeps_the_admin_apis_off_and_stops_nginx_gracefully():
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    flags = " ".join(services["prometheus"]["command"])
    assert "--web.enable-admin-api" not in flags
    assert "--web.enable-lifecycle" not in flags
    nginx = services["nginx"]
    assert nginx["stop_signal"] == "SIGQUIT"
    assert nginx["stop_grace_period"] == "35s"
