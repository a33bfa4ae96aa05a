"""Request ids: trust a sane incoming `X-Request-ID` (nginx sets one), otherwise make one."""

from __future__ import annotations

import os
import re

REQUEST_ID_HEADER = "X-Request-ID"

# Restrictive on purpose: the id lands in logs and response headers verbatim.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

# Fresh ids are drawn from the kernel's random source in batches: one `getrandom` call per
# request costs more than the rest of the id's handling.
_IDS_PER_DRAW = 64
_ID_BYTES = 16  # 32 hex digits, like nginx's $request_id
_unused_ids: list[str] = []


def _draw_ids() -> list[str]:
    digits = os.urandom(_ID_BYTES * _IDS_PER_DRAW).hex()
    step = 2 * _ID_BYTES
    return [digits[start : start + step] for start in range(0, len(digits), step)]


def new_request_id() -> str:
    """32 fresh random hex digits. Safe from threads: `list.pop` is atomic, and a second
    thread that finds the batch empty draws one of its own (every id is still drawn once)."""
    while True:
        try:
            return _unused_ids.pop()
        except IndexError:
            _unused_ids.extend(_draw_ids())


def _forget_parents_ids() -> None:
    # A forked worker would otherwise hand out the same ids as its parent and its siblings.
    _unused_ids.clear()


os.register_at_fork(after_in_child=_forget_parents_ids)


def resolve_request_id(incoming: str | None) -> str:
    """Return the incoming id when it is sane, else a fresh one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()
