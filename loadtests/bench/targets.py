"""The bench's targets: which server variants it loads, and where each one is.

A target is named as the registry names a variant (`gateway_common.variants`: flask, fastapi,
flask-gthread, ...), by an alias of the two default services (`wsgi`, `asgi`), or `all`: every
variant running behind the stack. What runs, under which prefix and with which capacity is the
stack's own answer, ``GET <public url>/variants.json``, so nothing here repeats a prefix. Pure
module apart from `fetch_running` (no Locust import).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from gateway_common import variants
from loadtests.settings import ALIASES, TARGETS, WEBSOCKET_SCENARIOS

ALL = variants.ALL
#: What `--targets` accepts.
NAMES = (*TARGETS, ALL)
VARIANTS_PATH = "/variants.json"


class TargetError(ValueError):
    """A target that is unknown, not running, or a /variants.json that cannot be read."""


@dataclass(frozen=True)
class Target:
    """One variant the bench loads, as /variants.json describes it.

    ``name`` is what the results call it: the name given on the command line (an alias keeps
    its name, so `wsgi`/`asgi` runs read as before), the variant's name otherwise.
    """

    name: str
    variant: str  # registry name: the `service` label of its metrics
    prefix: str  # URL path prefix on the public port, no trailing slash ("" when direct)
    interface: str
    framework: str
    server: str
    worker_class: str
    workers: int
    threads: int
    capacity: int | None  # requests it runs at once; None: unbounded (an event loop)
    websockets: bool

    def serves(self, scenario: str) -> bool:
        """Whether the variant has the scenario's routes (WebSockets are declared per variant)."""
        return self.websockets or scenario not in WEBSOCKET_SCENARIOS

    def describe(self) -> str:
        capacity = self.capacity if self.capacity is not None else "unbounded"
        return (
            f"{self.variant}: {self.framework} on {self.server} ({self.worker_class}), "
            f"{self.workers} workers x {self.threads} threads, capacity {capacity}"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _entry(doc: object) -> Target:
    if not isinstance(doc, Mapping):
        raise TargetError(f"{VARIANTS_PATH}: expected an object per variant, got {doc!r}")
    try:
        capacity = doc["capacity"]
        return Target(
            name=str(doc["name"]),
            variant=str(doc["name"]),
            prefix=str(doc["prefix"]).rstrip("/"),
            interface=str(doc["interface"]),
            framework=str(doc["framework"]),
            server=str(doc["server"]),
            worker_class=str(doc["worker_class"]),
            workers=int(doc["workers"]),
            threads=int(doc["threads"]),
            capacity=None if capacity is None else int(capacity),
            websockets=bool(doc["websockets"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TargetError(f"{VARIANTS_PATH}: malformed entry {doc!r} ({exc!r})") from None


def running_from_document(doc: object) -> tuple[Target, ...]:
    """The variants of a /variants.json document, in its order."""
    entries = doc.get("variants") if isinstance(doc, Mapping) else None
    if not isinstance(entries, list):
        raise TargetError(f'{VARIANTS_PATH}: expected {{"variants": [...]}}, got {doc!r:.200}')
    return tuple(_entry(e) for e in entries)


def registry_entry(name: str, environ: Mapping[str, str]) -> Target:
    """A variant as /variants.json would describe it (the same rendering), for a target reached
    directly (``--direct``), where no nginx answers; its prefix is empty."""
    variant = variants.with_default_overrides(variants.get(ALIASES.get(name, name)), environ)
    target = _entry(variant.summary())
    return Target(**(target.to_dict() | {"name": name, "prefix": ""}))


def parse_names(text: str) -> tuple[str, ...]:
    """`--targets`: names separated by commas, in order, each once (checked by `resolve`)."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise TargetError("--targets: nothing given")
    return tuple(dict.fromkeys(names))


def _known() -> str:
    aliases = ", ".join(f"{a}={v}" for a, v in ALIASES.items())
    return f"{ALL}, {', '.join(variants.BY_NAME)} (aliases {aliases})"


def resolve(
    names: Sequence[str],
    running: Sequence[Target],
    direct: Mapping[str, Target] | None = None,
) -> tuple[Target, ...]:
    """The targets to load: each name looked up among the running variants (``direct`` ones
    among those given), `all` expanded to every running variant in the stack's order.

    A variant asked for twice (``wsgi,flask``) runs once, under the first name given.
    """
    direct = direct or {}
    by_variant = {t.variant: t for t in running}
    out: dict[str, Target] = {}
    for name in names:
        if name == ALL:
            for target in running:
                out.setdefault(target.variant, target)
            continue
        if name in direct:
            out.setdefault(direct[name].variant, direct[name])
            continue
        running_names = ", ".join(by_variant) or "nothing"
        if name not in NAMES:
            raise TargetError(
                f"--targets: unknown {name!r}; running behind the stack: {running_names}; "
                f"known: {_known()}"
            )
        variant = ALIASES.get(name, name)
        if variant not in by_variant:
            raise TargetError(
                f"--targets: {name!r} is not running behind the stack; running: {running_names} "
                f"(start it with VARIANTS={variant} make up, or VARIANTS=all)"
            )
        target = by_variant[variant]
        out.setdefault(variant, Target(**(target.to_dict() | {"name": name})))
    return tuple(out.values())


def fetch_running(url: str, timeout_s: float = 5.0) -> tuple[Target, ...]:
    """GET <url>/variants.json; TargetError when the stack does not answer it."""
    import urllib.error
    import urllib.request

    full = url.rstrip("/") + VARIANTS_PATH
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as resp:
            doc = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TargetError(
            f"the stack is not reachable: GET {full} failed ({exc}); start it (make up, or "
            "STACK=native make up) or pass --url"
        ) from None
    return running_from_document(doc)
