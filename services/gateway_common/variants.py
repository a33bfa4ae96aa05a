"""The one registry of server variants: framework x server x worker model.

Every other place derives what it needs from this table: nginx's routes and Prometheus's
targets (stackctl.routes), the native components and their ports (stackctl), the compose
services (checked against it by tests/static/test_compose.py), `/variants.json`, the bench's
target names and each service's `/healthz` identity.

`flask` (`/wsgi/`) and `fastapi` (`/asgi/`) are the default stack; `VARIANTS=all make up` (or
`VARIANTS=name,name`) starts the others beside them, each under its own prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gateway_common.settings import ConfigError

VARIANT_ENV = "GATEWAY_VARIANT"
SELECTION_ENV = "VARIANTS"
ALL = "all"

# Each framework reads its settings from variables with its own prefix (WSGI_BIND, ...).
FRAMEWORK_ENV_PREFIX: dict[str, str] = {
    "flask": "WSGI",
    "fastapi": "ASGI",
    "django": "DJANGO",
    "tornado": "TORNADO",
}
INTERFACES = ("wsgi", "asgi", "tornado")
# Native ports: a variant's app port is APP_PORT_BASE + slot, its metrics port
# METRICS_PORT_BASE + slot (slot 0 is unused: the default services keep 8001/8002, 9101/9102).
APP_PORT_BASE = 8010
METRICS_PORT_BASE = 9210
# Docker mode: every service container listens on these (one container per variant).
CONTAINER_APP_PORT = 8000
CONTAINER_METRICS_PORT = 9100
# gevent: greenlets per worker (Gunicorn's worker_connections), the worker's bound.
GEVENT_WORKER_CONNECTIONS = 1000


@dataclass(frozen=True)
class Variant:
    name: str  # also the `service` label of its metrics and its compose service's name
    prefix: str  # public URL prefix on nginx's port, no trailing slash
    framework: str
    interface: str
    server: str
    worker_class: str
    workers: int
    threads: int
    # Requests one worker can run at once; None: not bounded by the server (an event loop).
    per_worker_limit: int | None
    websockets: bool  # serves /ws/echo and /ws/chat
    # How the server is started, relative to the repository root (the image's /app):
    # argv after the Python interpreter.
    command: tuple[str, ...]
    slot: int  # native port slot; 0 for the two default services

    @property
    def capacity(self) -> int | None:
        """Requests the variant can run at once (None: unbounded by the server)."""
        if self.per_worker_limit is None:
            return None
        return self.workers * self.per_worker_limit

    @property
    def default(self) -> bool:
        return self.name in DEFAULT_NAMES

    @property
    def env_prefix(self) -> str:
        return FRAMEWORK_ENV_PREFIX[self.framework]

    @property
    def port_name(self) -> str:
        """Its key in stackctl's port table."""
        return {"flask": "wsgi", "fastapi": "asgi"}.get(self.name, self.name)

    @property
    def metrics_port_name(self) -> str:
        return f"{self.port_name}_metrics"

    def summary(self) -> dict[str, object]:
        """One entry of `/variants.json`."""
        return {
            "name": self.name,
            "prefix": self.prefix + "/",
            "interface": self.interface,
            "framework": self.framework,
            "server": self.server,
            "worker_class": self.worker_class,
            "workers": self.workers,
            "threads": self.threads,
            "capacity": self.capacity,
            "websockets": self.websockets,
        }

    def server_env(self, bind: str, metrics_bind: str) -> dict[str, str]:
        """What its server process needs in the environment, besides the shared settings."""
        prefix = self.env_prefix
        env = {
            VARIANT_ENV: self.name,
            f"{prefix}_BIND": bind,
            f"{prefix}_METRICS_BIND": metrics_bind,
            f"{prefix}_WORKERS": str(self.workers),
            f"{prefix}_THREADS": str(self.threads),
            f"{prefix}_WORKER_CLASS": self.worker_class,
        }
        if self.interface == "asgi" or self.framework == "tornado":
            env[f"{prefix}_ROOT_PATH"] = self.prefix
        return env


def _gunicorn(config: str) -> tuple[str, ...]:
    return ("-m", "gunicorn", "-c", config)


FLASK_GUNICORN = _gunicorn("services/flask_app/gunicorn.conf.py")

VARIANTS: tuple[Variant, ...] = (
    Variant(
        name="flask",
        prefix="/wsgi",
        framework="flask",
        interface="wsgi",
        server="gunicorn",
        worker_class="sync",
        workers=2,
        threads=1,
        per_worker_limit=1,
        websockets=False,
        command=FLASK_GUNICORN,
        slot=0,
    ),
    Variant(
        name="fastapi",
        prefix="/asgi",
        framework="fastapi",
        interface="asgi",
        server="uvicorn",
        worker_class="uvicorn",
        workers=2,
        threads=1,
        per_worker_limit=None,
        websockets=True,
        command=("-m", "fastapi_app.serve"),
        slot=0,
    ),
    Variant(
        name="flask-gthread",
        prefix="/flask-gthread",
        framework="flask",
        interface="wsgi",
        server="gunicorn",
        worker_class="gthread",
        workers=2,
        threads=8,
        per_worker_limit=8,
        websockets=False,
        command=FLASK_GUNICORN,
        slot=1,
    ),
    Variant(
        name="flask-gevent",
        prefix="/flask-gevent",
        framework="flask",
        interface="wsgi",
        server="gunicorn",
        worker_class="gevent",
        workers=2,
        threads=1,
        per_worker_limit=GEVENT_WORKER_CONNECTIONS,
        websockets=False,
        command=FLASK_GUNICORN,
        slot=2,
    ),
    Variant(
        name="flask-uwsgi",
        prefix="/flask-uwsgi",
        framework="flask",
        interface="wsgi",
        server="uwsgi",
        worker_class="prefork+threads",
        workers=2,
        threads=4,
        per_worker_limit=4,
        websockets=False,
        command=("-m", "flask_app.uwsgi_serve"),
        slot=3,
    ),
    Variant(
        name="flask-granian",
        prefix="/flask-granian",
        framework="flask",
        interface="wsgi",
        server="granian",
        worker_class="blocking-threads",
        workers=2,
        threads=4,
        per_worker_limit=4,
        websockets=False,
        command=("-m", "flask_app.granian_serve"),
        slot=4,
    ),
    Variant(
        name="fastapi-hypercorn",
        prefix="/fastapi-hypercorn",
        framework="fastapi",
        interface="asgi",
        server="hypercorn",
        worker_class="asyncio",
        workers=2,
        threads=1,
        per_worker_limit=None,
        websockets=True,
        command=("-m", "fastapi_app.hypercorn_serve"),
        slot=5,
    ),
    Variant(
        name="fastapi-daphne",
        prefix="/fastapi-daphne",
        framework="fastapi",
        interface="asgi",
        server="daphne",
        worker_class="twisted",
        workers=1,  # Daphne runs one process; scale it with replicas
        threads=1,
        per_worker_limit=None,
        websockets=True,
        command=("-m", "fastapi_app.daphne_serve"),
        slot=6,
    ),
    Variant(
        name="fastapi-granian",
        prefix="/fastapi-granian",
        framework="fastapi",
        interface="asgi",
        server="granian",
        worker_class="asyncio",
        workers=2,
        threads=1,
        per_worker_limit=None,
        websockets=True,
        command=("-m", "fastapi_app.granian_serve"),
        slot=7,
    ),
    Variant(
        name="fastapi-gunicorn",
        prefix="/fastapi-gunicorn",
        framework="fastapi",
        interface="asgi",
        server="gunicorn",
        worker_class="asgi",
        workers=2,
        threads=1,
        per_worker_limit=None,
        websockets=True,
        command=_gunicorn("services/fastapi_app/gunicorn.conf.py"),
        slot=8,
    ),
    Variant(
        name="django-gunicorn",
        prefix="/django-gunicorn",
        framework="django",
        interface="wsgi",
        server="gunicorn",
        worker_class="sync",
        workers=2,
        threads=1,
        per_worker_limit=1,
        websockets=False,
        command=_gunicorn("services/django_app/gunicorn.conf.py"),
        slot=9,
    ),
    Variant(
        name="django-uvicorn",
        prefix="/django-uvicorn",
        framework="django",
        interface="asgi",
        server="uvicorn",
        worker_class="uvicorn",
        workers=2,
        threads=1,
        per_worker_limit=None,
        websockets=False,
        command=("-m", "django_app.serve"),
        slot=10,
    ),
    Variant(
        name="tornado",
        prefix="/tornado",
        framework="tornado",
        interface="tornado",
        server="tornado",
        worker_class="ioloop",
        workers=2,
        threads=1,
        per_worker_limit=None,
        websockets=True,
        command=("-m", "tornado_app.serve"),
        slot=11,
    ),
)

DEFAULT_NAMES = ("flask", "fastapi")
BY_NAME: dict[str, Variant] = {variant.name: variant for variant in VARIANTS}
EXTRA_NAMES: tuple[str, ...] = tuple(v.name for v in VARIANTS if v.name not in DEFAULT_NAMES)


def get(name: str) -> Variant:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown variant {name!r}; known: {', '.join(BY_NAME)}") from None


def parse_selection(raw: str | None) -> tuple[Variant, ...]:
    """`VARIANTS`: empty (the default stack), `all`, or names separated by commas.

    The default services are always part of the result, first; order follows the registry.
    """
    names = {part.strip().lower() for part in (raw or "").split(",") if part.strip()}
    if ALL in names:
        names = set(BY_NAME)
    unknown = sorted(names - set(BY_NAME))
    if unknown:
        raise ConfigError(
            f"{SELECTION_ENV} names unknown variants: {', '.join(unknown)}; "
            f"known: {ALL}, {', '.join(EXTRA_NAMES)}"
        )
    return tuple(v for v in VARIANTS if v.default or v.name in names)


def selected(environ: Mapping[str, str] | None = None) -> tuple[Variant, ...]:
    source = os.environ if environ is None else environ
    return parse_selection(source.get(SELECTION_ENV))


def with_default_overrides(variant: Variant, environ: Mapping[str, str]) -> Variant:
    """The default services take their sizes from the environment (WSGI_WORKERS, ...).

    A value the service would refuse is left at the registry's: the service itself reports it,
    naming the variable, when it starts.
    """
    if variant.name == "flask":
        workers = _int_or(environ.get("WSGI_WORKERS"), variant.workers)
        threads = _int_or(environ.get("WSGI_THREADS"), variant.threads)
        worker_class = environ.get("WSGI_WORKER_CLASS") or variant.worker_class
        if worker_class == "sync" and threads > 1:
            worker_class = "gthread"
        return replace(
            variant,
            workers=workers,
            threads=threads,
            per_worker_limit=GEVENT_WORKER_CONNECTIONS if worker_class == "gevent" else threads,
            worker_class=worker_class,
        )
    if variant.name == "fastapi":
        return replace(variant, workers=_int_or(environ.get("ASGI_WORKERS"), variant.workers))
    return variant


def _int_or(raw: str | None, default: int) -> int:
    try:
        value = int((raw or "").strip())
    except ValueError:
        return default
    return value if value >= 1 else default


def current(default: str, environ: Mapping[str, str] | None = None) -> Variant:
    """The variant this process serves: GATEWAY_VARIANT, else the framework's default."""
    source = os.environ if environ is None else environ
    name = (source.get(VARIANT_ENV) or default).strip()
    return get(name)
