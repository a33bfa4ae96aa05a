"""Environment handling: defaults, clear errors, the gunicorn config file, the launcher."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from flask import request
from starlette.requests import Request as StarletteRequest

from fastapi_app.app import create_app as create_fastapi_app
from fastapi_app.proxied import create_app as create_proxied_fastapi_app
from fastapi_app.settings import load_asgi_settings
from flask_app.app import create_app as create_flask_app
from flask_app.settings import load_server_settings, load_wsgi_settings, worker_classes
from gateway_common.settings import Bind, ConfigError, parse_bind

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = REPO_ROOT / "services" / "flask_app" / "gunicorn.conf.py"
# Both services require the broker's address; never contacted by these tests.
BROKER = {"REDIS_URL": "redis://broker:6400/0"}


def test_wsgi_defaults() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL is required"):
        load_wsgi_settings({})
    settings = load_wsgi_settings(BROKER)
    assert settings.bind == Bind("127.0.0.1", 8001)
    assert settings.metrics_bind == Bind("127.0.0.1", 9101)
    assert (settings.workers, settings.threads, settings.worker_class) == (2, 1, "sync")
    assert settings.capacity == 2
    assert settings.proxy_count == 1
    assert settings.keepalive_s == 75
    assert settings.redis_url == "redis://broker:6400/0"


def test_sync_with_threads_is_gthread() -> None:
    settings = load_wsgi_settings({**BROKER, "WSGI_THREADS": "4", "WSGI_WORKERS": "3"})
    assert settings.worker_class == "gthread"
    assert settings.capacity == 12


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WSGI_WORKERS", "two", "WSGI_WORKERS must be an integer between 1 and 64, got 'two'"),
        ("WSGI_WORKERS", "0", "WSGI_WORKERS must be an integer between 1 and 64, got '0'"),
        ("WSGI_WORKER_CLASS", "eventlet", "WSGI_WORKER_CLASS must be one of sync, gthread, gevent"),
        ("WSGI_BIND", "8001", "WSGI_BIND must look like HOST:PORT"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL must be one of"),
    ],
)
def test_wsgi_errors_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_wsgi_settings({**BROKER, name: value})


def test_worker_classes_are_the_registrys_per_server() -> None:
    assert worker_classes("gunicorn") == ("sync", "gthread", "gevent")
    assert worker_classes("uwsgi") == ("prefork+threads",)
    assert worker_classes("granian") == ("blocking-threads",)
    uwsgi = load_wsgi_settings({**BROKER, "GATEWAY_VARIANT": "flask-uwsgi", "WSGI_THREADS": "4"})
    assert (uwsgi.server, uwsgi.worker_class, uwsgi.capacity) == ("uwsgi", "prefork+threads", 8)
    with pytest.raises(ConfigError, match="WSGI_WORKER_CLASS must be one of prefork\\+threads"):
        load_wsgi_settings(
            {**BROKER, "GATEWAY_VARIANT": "flask-uwsgi", "WSGI_WORKER_CLASS": "gthread"}
        )
    with pytest.raises(ConfigError, match="names 'fastapi', a fastapi variant"):
        load_wsgi_settings({**BROKER, "GATEWAY_VARIANT": "fastapi"})


def test_a_launcher_serves_only_its_servers_variants() -> None:
    assert load_server_settings("granian", BROKER).service == "flask-granian"
    assert load_server_settings("uwsgi", {**BROKER, "GATEWAY_VARIANT": ""}).service == "flask-uwsgi"
    with pytest.raises(ConfigError, match="names 'flask-granian', which runs on granian"):
        load_server_settings("uwsgi", {**BROKER, "GATEWAY_VARIANT": "flask-granian"})
    with pytest.raises(ConfigError, match="no Flask variant runs on 'uvicorn'"):
        load_server_settings("uvicorn", BROKER)


def test_asgi_defaults_and_errors() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL is required"):
        load_asgi_settings(environ={})
    broker = BROKER
    settings = load_asgi_settings(environ=broker)
    assert settings.bind == Bind("127.0.0.1", 8002)
    assert settings.root_path == "/asgi"
    assert settings.forwarded_allow_ips == "127.0.0.1"
    assert settings.redis_url == "redis://broker:6400/0"
    with pytest.raises(ConfigError, match="ASGI_ROOT_PATH"):
        load_asgi_settings(environ={**broker, "ASGI_ROOT_PATH": "/asgi/"})
    assert load_asgi_settings(environ={**broker, "ASGI_ROOT_PATH": ""}).root_path == ""
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS .* got 'nginx'"):
        load_asgi_settings(environ={**broker, "FORWARDED_ALLOW_IPS": "10.0.0.0/8,nginx"})


def test_the_apps_take_their_settings_from_the_caller(redis_url: str) -> None:
    wsgi = load_wsgi_settings({"WSGI_WORKERS": "7", "WSGI_THREADS": "3", "REDIS_URL": redis_url})
    flask_app = create_flask_app(wsgi)
    health = flask_app.test_client().get("/healthz").get_json()
    assert (health["workers"], health["threads"], health["worker_class"]) == (7, 3, "gthread")
    asgi = load_asgi_settings(environ={"ASGI_WORKERS": "5", "REDIS_URL": redis_url})
    with TestClient(create_fastapi_app(asgi)) as client:
        assert client.get("/healthz").json()["workers"] == 5


@pytest.mark.parametrize("load", [load_wsgi_settings, load_asgi_settings])
@pytest.mark.parametrize("value", ["broker:6379", "http://broker:6379", "redis://"])
def test_redis_url_is_checked(load, value: str) -> None:
    with pytest.raises(ConfigError, match="REDIS_URL must be a URL starting with redis://"):
        load({"REDIS_URL": value})


def test_parse_bind() -> None:
    assert parse_bind("X", "[::1]:9000") == Bind("::1", 9000)
    assert str(Bind("::1", 9000)) == "[::1]:9000"
    assert parse_bind("X", "flask:8000") == Bind("flask", 8000)
    with pytest.raises(ConfigError):
        parse_bind("X", "127.0.0.1:70000")


def test_gunicorn_conf(monkeypatch: pytest.MonkeyPatch) -> None:
    # Gunicorn's config file is the one reader of the real environment on this side.
    monkeypatch.setenv("WSGI_BIND", "127.0.0.1:18001")
    monkeypatch.setenv("WSGI_WORKERS", "3")
    monkeypatch.setenv("WSGI_THREADS", "4")
    monkeypatch.setenv("WSGI_WORKER_CLASS", "sync")
    monkeypatch.setenv("BACKEND_KEEPALIVE_S", "90")
    monkeypatch.setenv("REDIS_URL", BROKER["REDIS_URL"])
    conf = runpy.run_path(str(GUNICORN_CONF))
    assert conf["wsgi_app"] == "flask_app.app:create_app()"
    assert conf["bind"] == ["127.0.0.1:18001"]
    assert (conf["workers"], conf["threads"], conf["worker_class"]) == (3, 4, "gthread")
    assert conf["keepalive"] == 90
    assert conf["graceful_timeout"] == 30
    assert conf["timeout"] > 60  # longer than the longest bounded request (60 s stream)
    assert conf["accesslog"] is None
    assert conf["control_socket_disable"] is True
    for hook in ("on_starting", "when_ready", "child_exit"):
        assert callable(conf[hook])


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)


def test_gunicorn_conf_bad_value_fails_at_load() -> None:
    env = {**os.environ, "WSGI_WORKERS": "many"}
    result = _run(
        [sys.executable, "-c", f"import runpy; runpy.run_path({str(GUNICORN_CONF)!r})"], env
    )
    assert result.returncode != 0
    assert "WSGI_WORKERS must be an integer between 1 and 64, got 'many'" in result.stderr


def test_launcher_reports_config_errors() -> None:
    unused_broker = "redis://127.0.0.1:1/0"  # never contacted: the launcher stops first
    env = {**os.environ, "REDIS_URL": unused_broker, "ASGI_WORKERS": "x"}
    result = _run([sys.executable, "-m", "fastapi_app.serve"], env)
    assert result.returncode == 2
    assert "configuration error: ASGI_WORKERS must be an integer" in result.stderr

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = _run([sys.executable, "-m", "fastapi_app.serve"], env)
    assert result.returncode == 2
    assert "REDIS_URL is required" in result.stderr

    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["REDIS_URL"] = unused_broker
    result = _run([sys.executable, "-m", "fastapi_app.serve"], env)
    assert result.returncode == 2
    assert "PROMETHEUS_MULTIPROC_DIR is not set" in result.stderr


def test_proxy_fix_trusts_one_proxy() -> None:
    app = create_flask_app(load_wsgi_settings(BROKER))

    @app.get("/whoami-test-only")
    def whoami() -> dict[str, str]:
        return {"remote_addr": str(request.remote_addr), "scheme": request.scheme}

    answer = app.test_client().get(
        "/whoami-test-only",
        headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https"},
    )
    assert answer.get_json() == {"remote_addr": "198.51.100.7", "scheme": "https"}


def test_fastapi_behind_the_proxy_check_trusts_only_forwarded_allow_ips(redis_url: str) -> None:
    # What the servers other than Uvicorn serve (fastapi_app.proxied): Uvicorn's rule.
    settings = load_asgi_settings(
        environ={"REDIS_URL": redis_url, "FORWARDED_ALLOW_IPS": "127.0.0.1"}
    )
    app = create_proxied_fastapi_app(settings)

    @app.app.get("/whoami-test-only")
    async def whoami(request: StarletteRequest) -> dict[str, str]:
        assert request.client is not None
        return {"client": request.client.host, "scheme": request.url.scheme}

    forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https"}
    with TestClient(app, client=("127.0.0.1", 40000)) as from_nginx:
        answer = from_nginx.get("/whoami-test-only", headers=forwarded).json()
    assert answer == {"client": "198.51.100.7", "scheme": "https"}
    with TestClient(app, client=("192.0.2.50", 40000)) as from_elsewhere:
        answer = from_elsewhere.get("/whoami-test-only", headers=forwarded).json()
    assert answer == {"client": "192.0.2.50", "scheme": "http"}
