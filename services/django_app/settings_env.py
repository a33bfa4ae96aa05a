"""The Django service's server settings, from `DJANGO_*` variables, checked once.

Not Django's settings module (that is `django_app.django_settings`, static): these say where
and how the server runs. The variant (GATEWAY_VARIANT, else the entry point's default) comes
from the registry, `gateway_common.variants`, and so do the defaults of the addresses (the
native ports of its slot).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_common import variants
from gateway_common.settings import (
    Bind,
    ConfigError,
    Environ,
    env_allowed_ips,
    env_bind,
    env_choice,
    env_int,
    env_log_level,
    env_redis_url,
    env_root_path,
)
from gateway_common.variants import Variant

FRAMEWORK = "django"
WSGI = "wsgi"
ASGI = "asgi"
# The variant an entry point serves when GATEWAY_VARIANT is not set.
DEFAULT_VARIANT = {WSGI: "django-gunicorn", ASGI: "django-uvicorn"}
# Gunicorn worker classes the WSGI side runs on ("sync" with threads > 1 runs as "gthread").
WSGI_WORKER_CLASSES = ("sync", "gthread")
ENV_PREFIX = variants.FRAMEWORK_ENV_PREFIX[FRAMEWORK]


@dataclass(frozen=True)
class DjangoEnvSettings:
    service: str  # the variant's name: the `service` label of metrics and logs, /healthz
    server: str  # the server the variant runs on (the registry's word for it)
    interface: str  # "wsgi" or "asgi": the entry point
    worker_class: str
    bind: Bind
    workers: int
    threads: int  # WSGI: threads per worker; ASGI: 1 (one event loop thread per worker)
    metrics_bind: Bind
    root_path: str  # ASGI: the public prefix Uvicorn reports (nginx cuts it off); WSGI: ""
    forwarded_allow_ips: str  # ASGI: whose X-Forwarded-* Uvicorn trusts
    keepalive_s: int
    log_level: str
    redis_url: str  # the chat broker, for /poll; no default here: each run mode passes its own

    @property
    def capacity(self) -> int:
        """Requests at once: WSGI workers x threads; ASGI, the event loops (as FastAPI's)."""
        if self.interface == WSGI:
            return self.workers * self.threads
        return self.workers


def _variant(interface: str, environ: Environ | None) -> Variant:
    variant = variants.current(DEFAULT_VARIANT[interface], environ)
    if variant.framework != FRAMEWORK or variant.interface != interface:
        raise ConfigError(
            f"{variants.VARIANT_ENV} names {variant.name!r}, a {variant.framework} "
            f"{variant.interface} variant; this entry point serves Django over {interface}"
        )
    return variant


def _env(name: str) -> str:
    return f"{ENV_PREFIX}_{name}"


def load_django_settings(interface: str, environ: Environ | None = None) -> DjangoEnvSettings:
    """Settings of the `interface` entry point from ``environ`` (the process's when None)."""
    if interface not in DEFAULT_VARIANT:
        raise ValueError(f"interface must be {WSGI!r} or {ASGI!r}, got {interface!r}")
    variant = _variant(interface, environ)
    bind = env_bind(
        _env("BIND"), f"127.0.0.1:{variants.APP_PORT_BASE + variant.slot}", environ=environ
    )
    metrics_bind = env_bind(
        _env("METRICS_BIND"),
        f"127.0.0.1:{variants.METRICS_PORT_BASE + variant.slot}",
        environ=environ,
    )
    if bind == metrics_bind:
        raise ConfigError(
            f"{_env('METRICS_BIND')} must differ from {_env('BIND')}, both are {bind}"
        )
    workers = env_int(_env("WORKERS"), variant.workers, 1, 64, environ=environ)
    if interface == WSGI:
        threads = env_int(_env("THREADS"), variant.threads, 1, 256, environ=environ)
        worker_class = env_choice(
            _env("WORKER_CLASS"), variant.worker_class, WSGI_WORKER_CLASSES, environ=environ
        )
        if worker_class == "sync" and threads > 1:
            worker_class = "gthread"  # what gunicorn does too; said explicitly here
        root_path = ""
    else:
        threads = 1
        worker_class = variant.worker_class
        root_path = env_root_path(_env("ROOT_PATH"), variant.prefix, environ=environ)
    return DjangoEnvSettings(
        service=variant.name,
        server=variant.server,
        interface=interface,
        worker_class=worker_class,
        bind=bind,
        workers=workers,
        threads=threads,
        metrics_bind=metrics_bind,
        root_path=root_path,
        forwarded_allow_ips=env_allowed_ips("FORWARDED_ALLOW_IPS", "127.0.0.1", environ=environ),
        keepalive_s=env_int("BACKEND_KEEPALIVE_S", 75, 1, 3600, environ=environ),
        log_level=env_log_level(environ=environ),
        redis_url=env_redis_url(environ=environ),
    )
