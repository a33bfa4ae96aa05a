"""uwsgi.ini reads exactly what its launcher exports; the launcher's own settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flask_app import uwsgi_serve
from flask_app.settings import load_server_settings
from gateway_common.limits import LISTEN_BACKLOG

BROKER = {"REDIS_URL": "redis://broker:6400/0"}  # required; never connected to here
_REFERENCE = re.compile(r"\$\(([A-Za-z0-9_]+)\)")


def _options(text: str) -> list[tuple[str, str]]:
    """(option, value) in file order: uWSGI's ini repeats some options (logger, log-route)."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith((";", "#", "[")):
            continue
        key, equals, value = line.partition("=")
        assert equals, f"not an option line: {line!r}"
        found.append((key.strip(), value.strip()))
    return found


def test_the_ini_reads_exactly_what_the_launcher_exports(tmp_path: Path) -> None:
    values = [value for _, value in _options(uwsgi_serve.INI.read_text())]
    referenced = {name for value in values for name in _REFERENCE.findall(value)}
    settings = load_server_settings("uwsgi", BROKER)
    exported = uwsgi_serve.IniValues.from_settings(settings, tmp_path / "fifo").environ()
    assert referenced == set(exported)
    # uWSGI reads any UWSGI_* variable as an option of its own: none of these may be one.
    assert not any(name.startswith("UWSGI_") for name in exported)


def test_the_ini_keeps_the_settings_the_launcher_relies_on() -> None:
    options = dict(_options(uwsgi_serve.INI.read_text()))
    # A stop is the FIFO's `q`; a reload its `c`, which needs lazy-apps.
    assert options["master-fifo"] == "$(WSGI_MASTER_FIFO)"
    assert options["lazy-apps"] == "true"
    assert options["module"] == "flask_app.uwsgi_app:application"
    # `listen` is applied while uWSGI parses, before $(NAME) is substituted: command line only.
    assert "listen" not in options
    assert uwsgi_serve.uwsgi_command()[-2:] == ["--listen", str(uwsgi_serve.listen_backlog())]
    # nginx lets up to 4 x 4 KiB of request head through, plus its own headers.
    assert int(options["buffer-size"]) >= 2 * 4 * 4096


def test_uwsgi_values_come_from_the_checked_settings(tmp_path: Path) -> None:
    environ = {**BROKER, "WSGI_BIND": "127.0.0.1:18500", "WSGI_WORKERS": "3", "WSGI_THREADS": "5"}
    settings = load_server_settings("uwsgi", environ)
    exported = uwsgi_serve.IniValues.from_settings(settings, tmp_path / "fifo").environ()
    assert exported["GATEWAY_VARIANT"] == "flask-uwsgi"
    assert (exported["WSGI_BIND"], exported["WSGI_WORKERS"], exported["WSGI_THREADS"]) == (
        "127.0.0.1:18500",
        "3",
        "5",
    )
    assert settings.capacity == 15


@pytest.mark.parametrize(("somaxconn", "expected"), [("128\n", 128), ("65535", LISTEN_BACKLOG)])
def test_the_backlog_never_exceeds_the_kernels_cap(
    somaxconn: str, expected: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = tmp_path / "somaxconn"
    cap.write_text(somaxconn)
    monkeypatch.setattr(uwsgi_serve, "SOMAXCONN", cap)
    assert uwsgi_serve.listen_backlog() == expected
    monkeypatch.setattr(uwsgi_serve, "SOMAXCONN", tmp_path / "missing")
    assert uwsgi_serve.listen_backlog() == LISTEN_BACKLOG
