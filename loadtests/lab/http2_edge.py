"""Lab 7: HTTP/2 at the edge serves both interfaces, where the stack has that feature.

nginx terminates TLS and HTTP/2 and speaks HTTP/1.1 to both services, so neither WSGI nor ASGI
needs to know about it. A stack without an HTTPS port at the edge gets the verdict "skipped: not
available": nothing is faked.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from loadtests.lab.model import Check, Knobs, LabResult, Outcome, Prediction, Verdict
from loadtests.lab.runner import Console
from loadtests.lab.stack import LabStack

CONNECT_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Http2Measurement:
    tls_url: str | None
    alpn: str | None
    #: interface -> the HTTP version it answered over, and the status.
    answers: dict[str, tuple[str, int]]


def edge_tls(ca: Path | None) -> ssl.SSLContext:
    """Trusts the stack's own certificate (self-signed unless TLS_CERT names one) and offers h2."""
    context = ssl.create_default_context(cafile=str(ca) if ca and ca.is_file() else None)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def negotiated_alpn(tls_url: str, ca: Path | None) -> str | None:
    """The protocol the edge picks in the TLS handshake; None when no TLS answers there."""
    parts = urlsplit(tls_url)
    try:
        with (
            socket.create_connection((parts.hostname, parts.port or 443), CONNECT_TIMEOUT_S) as raw,
            edge_tls(ca).wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            return tls.selected_alpn_protocol()
    except (OSError, ssl.SSLError):
        return None


async def _answers(tls_url: str, ca: Path | None) -> dict[str, tuple[str, int]]:
    answers = {}
    async with httpx.AsyncClient(
        base_url=tls_url, http2=True, verify=edge_tls(ca), timeout=10
    ) as c:
        for interface in ("wsgi", "asgi"):
            response = await c.get(f"/{interface}/hello")
            answers[interface] = (response.http_version, response.status_code)
    return answers


def run(stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    prediction = Prediction(
        "where the edge has an HTTPS port, it negotiates h2 and both services answer over it",
        (
            "ALPN offer [h2, http/1.1] -> the edge picks h2",
            "GET /wsgi/hello and /asgi/hello over that HTTP/2 connection -> 200 each; nginx "
            "speaks HTTP/1.1 to both services behind it",
        ),
    )
    console.expect(prediction)
    if stack.tls_url is None:
        console.say("This stack has no HTTPS port at the edge: HTTP/2 is not in this stack yet.")
        got = Http2Measurement(None, None, {})
        verdict = Verdict(
            "http2-edge", Outcome.SKIPPED, notes=("no HTTPS port at the edge in this stack",)
        )
        console.verdict(verdict)
        return LabResult(prediction, got, verdict)
    console.say(f"TLS handshake with {stack.tls_url}, offering h2 ...")
    alpn = negotiated_alpn(stack.tls_url, stack.tls_ca)
    console.say(f"  negotiated: {alpn or 'nothing (no TLS answer)'}")
    if alpn != "h2":
        got = Http2Measurement(stack.tls_url, alpn, {})
        verdict = Verdict(
            "http2-edge",
            Outcome.SKIPPED,
            notes=(f"{stack.tls_url} does not negotiate h2 (ALPN: {alpn})",),
        )
        console.verdict(verdict)
        return LabResult(prediction, got, verdict)
    answers = asyncio.run(_answers(stack.tls_url, stack.tls_ca))
    for interface, (version, status) in answers.items():
        console.say(f"  GET /{interface}/hello -> {status} over {version}")
    got = Http2Measurement(stack.tls_url, alpn, answers)
    checks = tuple(
        Check(f"{interface} answered 200 over HTTP/2", 1, int(answer == ("HTTP/2", 200)), 1, 1)
        for interface, answer in answers.items()
    )
    verdict = Verdict.from_checks("http2-edge", checks)
    console.verdict(verdict)
    return LabResult(prediction, got, verdict)
