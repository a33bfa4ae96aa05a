"""The poll scenario's messages: what its publisher posts and how a poller reads an answer.

Pure (no Locust import), so the bench's unit tests read it too. The publisher posts
``{"text": <text>}`` to ``POST /poll?room=R``; the text is JSON carrying the message's sequence
number and the publisher's clock. ``GET /poll`` answers 200 with the message (the chat envelope,
``{"type": "message", "text": ..., "sent_at": ...}``) or 204 when none came in time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Delivery:
    """One message as a poller received it."""

    seq: int
    #: When the message was sent: the envelope's ``sent_at`` (the server's publish time, same
    #: host clock), else the publisher's own stamp in the text.
    sent_at: float


def message_text(seq: int, now: float) -> str:
    return json.dumps({"seq": seq, "t": now}, separators=(",", ":"))


def read_answer(body: str) -> Delivery | None:
    """The bench's message in a 200 answer (bare, or under ``message``); None if it has none."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("message"), dict):
        doc = doc["message"]
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
        return None
    try:
        inner = json.loads(doc["text"])
        seq = int(inner["seq"])
        sent_at = float(doc["sent_at"] if "sent_at" in doc else inner["t"])
    except (ValueError, KeyError, TypeError):
        return None
    return Delivery(seq, sent_at)
