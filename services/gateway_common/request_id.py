"""Request ids: trust a sane incoming `X-Request-ID` (nginx sets one), otherwise make one."""

from __future__ import annotations

import os
import re

REQUEST_ID_HEADER = "X-Request-ID"

# Restrictive on purpose: the id lands in logs and response headers verbatim.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def resolve_request_id(incoming: str | None) -> str:
    """Return the incoming id when it is sane, else 32 fresh random hex digits (like nginx's)."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()  # what uuid4().hex draws, without building a UUID
