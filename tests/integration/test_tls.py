"""The TLS port (HTTPS_PORT): HTTP/2 by ALPN for both services, SSE and wss:// through it, and the
same routing rules as the plain port (internal endpoints are 404 there too)."""

from __future__ import annotations

import asyncio
import socket
import ssl

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import StackHandle

pytestmark = pytest.mark.integration


def _tls_context(stack: StackHandle, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(stack.tls_ca))
    context.set_alpn_protocols(alpn)
    return context


def _negotiated(stack: StackHandle, alpn: list[str]) -> str | None:
    host, port = stack.settings.address("https").rsplit(":", 1)
    context = _tls_context(stack, alpn)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.selected_alpn_protocol()


def test_tls_port_offers_h2_and_http11_by_alpn(stack: StackHandle) -> None:
    assert _negotiated(stack, ["h2", "http/1.1"]) == "h2"
    assert _negotiated(stack, ["http/1.1"]) == "http/1.1"


@pytest.mark.parametrize(("prefix", "service"), [("wsgi", "flask"), ("asgi", "fastapi")])
def test_both_services_answer_over_http2(stack: StackHandle, prefix: str, service: str) -> None:
    with httpx.Client(http2=True, verify=_tls_context(stack, ["h2"]), timeout=10) as client:
        response = client.get(f"{stack.tls_url}/{prefix}/hello")
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.json()["service"] == service
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("service", ["wsgi", "asgi"])
def test_sse_streams_over_http2(stack: StackHandle, service: str) -> None:
    url = f"{stack.tls_url}/{service}/stream?events=3&interval_ms=50"
    with (
        httpx.Client(http2=True, verify=_tls_context(stack, ["h2"]), timeout=10) as client,
        client.stream("GET", url) as response,
    ):
        assert response.http_version == "HTTP/2"
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    assert body.count("event: tick") == 3


def test_wss_echo_through_the_tls_port(stack: StackHandle) -> None:
    url = stack.tls_url.replace("https://", "wss://", 1) + "/asgi/ws/echo"

    async def echo() -> str:
        context = _tls_context(stack, ["http/1.1"])
        async with connect(url, ssl=context, server_hostname="localhost") as ws:
            await ws.send("over TLS")
            return await asyncio.wait_for(ws.recv(), 10)

    assert asyncio.run(echo()) == "over TLS"


@pytest.mark.parametrize("path", ["/stub_status", "/metrics", "/_errors/400.json", "/healthz"])
def test_internal_endpoints_are_404_on_the_tls_port(stack: StackHandle, path: str) -> None:
    with httpx.Client(http2=True, verify=_tls_context(stack, ["h2"]), timeout=10) as client:
        response = client.get(f"{stack.tls_url}{path}")
    assert response.http_version == "HTTP/2"
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
