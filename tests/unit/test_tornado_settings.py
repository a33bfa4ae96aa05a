"""The Tornado service's settings: the registry's defaults, overrides, errors that name the
variable."""

from __future__ import annotations

import pytest

from gateway_common import variants
from gateway_common.settings import Bind, ConfigError
from tornado_app.settings import load_tornado_settings

BROKER = {"REDIS_URL": "redis://broker:6400/0"}


def test_defaults_come_from_the_registry() -> None:
    variant = variants.get("tornado")
    settings = load_tornado_settings(BROKER)
    assert (settings.service, settings.server, settings.worker_class) == (
        "tornado",
        "tornado",
        "ioloop",
    )
    assert settings.bind == Bind("127.0.0.1", variants.APP_PORT_BASE + variant.slot)
    assert settings.metrics_bind == Bind("127.0.0.1", variants.METRICS_PORT_BASE + variant.slot)
    assert settings.workers == variant.workers == settings.capacity
    assert settings.root_path == variant.prefix == "/tornado"
    assert (settings.keepalive_s, settings.log_level) == (75, "info")
    assert settings.redis_url == BROKER["REDIS_URL"]


def test_the_launcher_environment_of_the_registry_is_read_as_given() -> None:
    variant = variants.get("tornado")
    env = {**variant.server_env("127.0.0.1:28021", "127.0.0.1:29221"), **BROKER}
    env["TORNADO_WORKERS"] = "3"
    settings = load_tornado_settings(env)
    assert (settings.bind, settings.metrics_bind) == (
        Bind("127.0.0.1", 28021),
        Bind("127.0.0.1", 29221),
    )
    assert (settings.workers, settings.capacity) == (3, 3)
    assert settings.root_path == "/tornado"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"REDIS_URL": ""}, "REDIS_URL is required"),
        ({"REDIS_URL": "http://broker"}, "REDIS_URL must be a URL starting with redis://"),
        ({"TORNADO_WORKERS": "65"}, "TORNADO_WORKERS must be an integer between 1 and 64"),
        ({"TORNADO_BIND": "8021"}, "TORNADO_BIND must look like HOST:PORT"),
        (
            {"TORNADO_BIND": "127.0.0.1:9000", "TORNADO_METRICS_BIND": "127.0.0.1:9000"},
            "TORNADO_METRICS_BIND must differ from TORNADO_BIND",
        ),
        ({"TORNADO_ROOT_PATH": "/tornado/"}, "TORNADO_ROOT_PATH must be empty or look like"),
        ({"BACKEND_KEEPALIVE_S": "0"}, "BACKEND_KEEPALIVE_S must be an integer between 1"),
        ({"GATEWAY_VARIANT": "tornado-uvloop"}, "unknown variant 'tornado-uvloop'"),
    ],
)
def test_errors_name_the_variable(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_tornado_settings({**BROKER, **overrides})
