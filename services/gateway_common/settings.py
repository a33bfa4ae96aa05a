"""Reading and checking environment variables, with errors that name the variable.

Every reader takes the mapping to read (``environ``; the process environment when None), so a
test builds settings from a dict of its own instead of changing the process's environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
REDIS_URL_ENV = "REDIS_URL"
REDIS_URL_SCHEMES = ("redis", "rediss", "unix")


class ConfigError(ValueError):
    """A bad or missing environment variable; the message says which and why."""


Environ = Mapping[str, str]


def _source(environ: Environ | None) -> Environ:
    return os.environ if environ is None else environ


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def env_str(name: str, default: str, environ: Environ | None = None) -> str:
    raw = _source(environ).get(name)
    return default if raw is None or raw == "" else raw


def env_int(name: str, default: int, low: int, high: int, environ: Environ | None = None) -> int:
    raw = _source(environ).get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer between {low} and {high}, got {raw!r}")
    return value


def env_choice(
    name: str, default: str, choices: Collection[str], environ: Environ | None = None
) -> str:
    value = env_str(name, default, environ).strip().lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_log_level(
    name: str = "LOG_LEVEL", default: str = "info", environ: Environ | None = None
) -> str:
    return env_choice(name, default, LOG_LEVELS, environ)


_BIND = re.compile(
    r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+)):(?P<port>[0-9]{1,5})$"
)


def parse_bind(name: str, raw: str) -> Bind:
    """`HOST:PORT` or `[IPV6]:PORT`; unix sockets are not supported here."""
    match = _BIND.fullmatch(raw.strip())
    port = int(match["port"]) if match else 0
    if match is None or not 1 <= port <= 65535:
        raise ConfigError(f"{name} must look like HOST:PORT (e.g. 127.0.0.1:8001), got {raw!r}")
    return Bind(host=match["ipv6"] or match["host"], port=port)


def env_bind(name: str, default: str, environ: Environ | None = None) -> Bind:
    return parse_bind(name, env_str(name, default, environ))


def env_required_dir(name: str, environ: Environ | None = None) -> str:
    raw = _source(environ).get(name)
    if not raw:
        raise ConfigError(f"{name} is required: set it to a writable directory")
    return raw


def env_root_path(name: str, default: str, environ: Environ | None = None) -> str:
    """A URL prefix such as `/asgi` (or empty): leading slash, no trailing slash."""
    value = _source(environ).get(name, default).strip()  # empty is allowed: no prefix
    if value and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
        raise ConfigError(
            f"{name} must be empty or look like /prefix (no trailing slash), got {value!r}"
        )
    return value


def env_allowed_ips(name: str, default: str, environ: Environ | None = None) -> str:
    """Comma-separated IPs/CIDRs (or `*`), as uvicorn's forwarded_allow_ips takes them."""
    value = env_str(name, default, environ)
    for item in (part.strip() for part in value.split(",")):
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name} must be a comma-separated list of IPs or CIDRs (or *), got {item!r}"
            ) from None
    return value


def env_redis_url(name: str = REDIS_URL_ENV, environ: Environ | None = None) -> str:
    """A redis-py URL such as `redis://HOST:PORT/0`; required (chat and /poll need the broker)."""
    raw = env_str(name, "", environ).strip()
    if not raw:
        raise ConfigError(
            f"{name} is required: the chat broker's address, e.g. redis://HOST:PORT/0"
        )
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme not in REDIS_URL_SCHEMES or not (parsed.hostname or parsed.path):
        schemes = ", ".join(f"{scheme}://" for scheme in REDIS_URL_SCHEMES)
        # The value itself is not echoed: it may carry a password.
        raise ConfigError(f"{name} must be a URL starting with {schemes}")
    return raw
