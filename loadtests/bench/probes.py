"""What the bench asks the stack before it starts: each target's /healthz, and whether the
targets have the routes of the scenarios that not every variant serves (poll).

Uses urllib: import it only once Locust has monkey-patched the standard library (see cli).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from loadtests.bench.options import BenchOptions, UsageError
from loadtests.bench.results import NotApplicable
from loadtests.bench.targets import Target

TIMEOUT_S = 5.0
#: The room a probe publishes to (nobody listens there).
PROBE_ROOM = "bench-probe"
#: How a variant without a route answers it (the contract's JSON errors).
ABSENT_STATUS = (404, 501)


def _request(req: urllib.request.Request | str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def health(opts: BenchOptions) -> dict[str, dict]:
    """Each target's /healthz document, by target name; UsageError when one does not answer."""
    out = {}
    for target in opts.targets:
        url = opts.healthz_url(target)
        try:
            status, body = _request(url)
            doc = json.loads(body) if status == 200 else {}
        except (OSError, ValueError) as exc:
            status, doc = 0, {"error": str(exc)}
        if doc.get("status") != "ok":
            raise UsageError(
                f"{target.name} is not healthy: GET {url} answered {status or 'nothing'} "
                f"({doc or 'no document'}); start it (make up, or STACK=native make up) or pass "
                "--url"
            )
        out[target.name] = doc
    return out


def absent_routes(opts: BenchOptions) -> list[NotApplicable]:
    """The poll cells whose variant has no /poll route (it answers the contract's 404 or 501):
    "not applicable", not an error. A publish (POST) tells without waiting on anything."""
    if "poll" not in opts.scenarios:
        return []
    return [na for target in opts.targets if (na := _poll_absent(opts, target)) is not None]


def _poll_absent(opts: BenchOptions, target: Target) -> NotApplicable | None:
    url = opts.url_of(target, f"/poll?room={PROBE_ROOM}")
    req = urllib.request.Request(
        url,
        data=json.dumps({"text": "probe"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        status, body = _request(req)
    except OSError as exc:
        raise UsageError(f"POST {url} failed ({exc})") from None
    if 200 <= status < 300:
        return None
    if status in ABSENT_STATUS:
        return NotApplicable("poll", target.name, f"{target.variant} has no /poll (HTTP {status})")
    raise UsageError(f"POST {url} answered {status}: {body[:200]!r}")
