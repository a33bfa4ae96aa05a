"""What every launcher does before it hands over to its server.

The launcher is the process that stays alive while the server's workers run: it checks the
environment, logs JSON, prepares the metrics directory, sets the server gauges and serves the
aggregated metrics on their own port. `prepare` does all of it in that order; a launcher that
must do something in between (bind its sockets first, let the server set up logging) calls the
steps itself. Gunicorn's master does the same from `gateway_common.gunicorn_hooks`.
"""

from __future__ import annotations

import logging
import logging.config
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from gateway_common.logging import log_config_dict
from gateway_common.settings import Bind, ConfigError

CONFIG_ERROR_EXIT = 2

logger = logging.getLogger("gateway_common.launch")


class ServerSettings(Protocol):
    """The settings every launcher reads, whatever the framework's settings class."""

    @property
    def service(self) -> str: ...
    @property
    def server(self) -> str: ...
    @property
    def bind(self) -> Bind: ...
    @property
    def workers(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def metrics_bind(self) -> Bind: ...
    @property
    def log_level(self) -> str: ...


SettingsT = TypeVar("SettingsT", bound=ServerSettings)


@dataclass(frozen=True)
class Launch(Generic[SettingsT]):
    settings: SettingsT
    log_config: dict[str, Any]  # what the server's workers configure logging from


def load_settings(launcher: str, load: Callable[[], SettingsT]) -> SettingsT:
    """The launcher's settings; a configuration error is printed and exits with 2."""
    try:
        settings = load()
        # Imported here so a missing PROMETHEUS_MULTIPROC_DIR is reported like the others.
        from gateway_common import metrics  # noqa: F401
    except ConfigError as exc:
        print(f"{launcher}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT) from None
    return settings


def configure_logging(settings: ServerSettings) -> dict[str, Any]:
    log_config = log_config_dict(settings.service, settings.log_level)
    logging.config.dictConfig(log_config)
    return log_config


def start_metrics(settings: ServerSettings, interface: str) -> None:
    """A fresh metrics directory, the server gauges, and the aggregate served on its port."""
    from gateway_common import metrics

    metrics.reset_for_server(settings.service, interface, settings.workers, settings.capacity)
    metrics.serve_metrics(settings.metrics_bind)


def log_start(settings: ServerSettings, **fields: object) -> None:
    start = {"bind": str(settings.bind), "workers": settings.workers}
    root_path = getattr(settings, "root_path", None)  # the ASGI settings have one
    if root_path is not None:
        start["root_path"] = root_path
    logger.info(f"starting {settings.server}", extra={"fields": {**start, **fields}})


def prepare(
    launcher: str, load: Callable[[], SettingsT], interface: str, **log_fields: object
) -> Launch[SettingsT]:
    """Settings, JSON logging and metrics, in that order; exits with 2 on a configuration error."""
    settings = load_settings(launcher, load)
    log_config = configure_logging(settings)
    start_metrics(settings, interface)
    log_start(settings, **log_fields)
    return Launch(settings=settings, log_config=log_config)
