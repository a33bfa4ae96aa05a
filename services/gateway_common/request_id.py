"""Request ids: trust a sane incoming `X-Request-ID` (nginx sets one), otherwise make one."""

from __future__ import annotations

import re
import uuid

REQUEST_ID_HEADER = "X-Request-ID"

# Restrictive on purpose: the id lands in logs and response headers verbatim.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def resolve_request_id(incoming: str | None) -> str:
    """Return the incoming id when it is sane, else a fresh uuid4 hex."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex
