"""The poll scenario's messages: what its publisher posts and how a poller reads an answer.

Pure (no Locust import), so the bench's unit tests read it too. The publisher posts
``{"text": <text>}`` to ``POST /poll?room=R``; the text is JSON carrying the message's sequence
number. ``GET /poll`` answers 200 with the room's chat message (`gateway_common.chat_bus`'s
`ChatMessage` document, whose ``sent_at`` is when the server published it) or 204 when none came
in time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway_common.chat_bus import ChatMessage


@dataclass(frozen=True)
class Delivery:
    """One message as a poller received it."""

    seq: int
    #: When the server published it (same host, same clock as the poller's).
    sent_at: float


def message_text(seq: int) -> str:
    return json.dumps({"seq": seq}, separators=(",", ":"))


def read_answer(body: str | bytes) -> Delivery | None:
    """The bench's message in a 200 answer; None when the answer carries none."""
    message = ChatMessage.decode(body)
    if message is None:
        return None
    try:
        seq = json.loads(message.text)["seq"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(seq, bool) or not isinstance(seq, int):
        return None
    return Delivery(seq, message.sent_at)
