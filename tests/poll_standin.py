"""A small real HTTP server speaking the long-poll contract, for the bench's poll scenario.

It stands in for the stack where the bench's poll measurement is tested against known server
behaviour: `GET /variants.json` lists the variants it poses as (the registry's entries), and under
each one's prefix `GET /healthz`, `GET /poll?room=R&timeout_ms=N` (200 with the first message
published in R after the request arrived, 204 at the timeout) and `POST /poll?room=R`
(`{"text": ...}`, publishes). A variant with a capacity serves at most that many requests at once,
as a server with one worker per request does: a waiting poll holds its slot, and requests beyond
the capacity (a publish included) queue for one. A variant named in ``without_poll`` answers
the contract's 404 JSON for /poll.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from gateway_common.chat_bus import ChatMessage
from gateway_common.variants import Variant

HOST = "127.0.0.1"


class _Rooms:
    """Messages per room; a waiting poll wakes on the next one (all rooms share one lock)."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.messages: dict[str, list[dict]] = {}

    def publish(self, room: str, text: str) -> None:
        with self.changed:
            message = ChatMessage.new(room, "stand-in", text).document()
            self.messages.setdefault(room, []).append(message)
            self.changed.notify_all()

    def next_message(self, room: str, timeout_s: float) -> dict | None:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            seen = len(self.messages.get(room, ()))
            while len(self.messages.get(room, ())) == seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)
            return self.messages[room][seen]


class PollStandIn:
    def __init__(self, variants: Sequence[Variant], without_poll: Collection[str] = ()) -> None:
        self.variants = tuple(variants)
        self.without_poll = frozenset(without_poll)
        self.rooms = _Rooms()
        self.slots = {
            v.prefix: threading.Semaphore(v.capacity) if v.capacity else None for v in variants
        }
        self.server = ThreadingHTTPServer((HOST, 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}"

    def __enter__(self) -> PollStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def slot(self, variant: Variant) -> AbstractContextManager:
        slots = self.slots[variant.prefix]
        return nullcontext() if slots is None else slots

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the load generator's clients expect
            disable_nagle_algorithm = True  # headers and body leave at once

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, doc: dict | None = None) -> None:
                body = b"" if doc is None else json.dumps(doc).encode()
                self.send_response(status)
                if doc is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self) -> tuple[Variant | None, str, dict[str, list[str]]]:
                url = urlsplit(self.path)
                for variant in standin.variants:
                    if url.path.startswith(variant.prefix + "/"):
                        return variant, url.path[len(variant.prefix) :], parse_qs(url.query)
                return None, url.path, parse_qs(url.query)

            def _not_found(self) -> None:
                message = f"no route for {self.command} {urlsplit(self.path).path}"
                self._send(404, {"error": {"status": 404, "code": "not_found", "message": message}})

            def do_GET(self) -> None:
                variant, path, query = self._route()
                if variant is None:
                    if path == "/variants.json":
                        self._send(200, {"variants": [v.summary() for v in standin.variants]})
                    else:
                        self._not_found()
                    return
                with standin.slot(variant):
                    if path == "/healthz":
                        self._send(200, {"status": "ok", "service": variant.name})
                    elif path == "/poll" and variant.name not in standin.without_poll:
                        timeout_s = int(query["timeout_ms"][0]) / 1000
                        message = standin.rooms.next_message(query["room"][0], timeout_s)
                        self._send(*((204,) if message is None else (200, message)))
                    else:
                        self._not_found()

            def do_POST(self) -> None:
                variant, path, query = self._route()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if variant is None or path != "/poll" or variant.name in standin.without_poll:
                    self._not_found()
                    return
                with standin.slot(variant):
                    standin.rooms.publish(query["room"][0], json.loads(body)["text"])
                    self._send(202, {"status": "published"})

        return Handler
