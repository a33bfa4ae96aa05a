"""The real nginx checks the config rendered from the one template, as native mode renders it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_common.validation import POLL_TIMEOUT_MS_MAX
from stackctl import native
from stackctl.render import placeholders
from stackctl.settings import REPO_ROOT, load_settings

pytestmark = pytest.mark.static

TEMPLATE = REPO_ROOT / "nginx" / "templates" / "nginx.conf.template"


@pytest.fixture
def rendered(tmp_path: Path):
    settings = load_settings("test", {"STATE_DIR": str(tmp_path / "state")})
    configs = native.render_configs(settings)
    yield configs, settings
    run_dir = configs.nginx_run_dir
    if run_dir.is_relative_to("/tmp") and run_dir != Path("/tmp"):
        shutil.rmtree(run_dir, ignore_errors=True)


def test_native_render_provides_every_placeholder(rendered):
    configs, _ = rendered
    assert placeholders(configs.nginx_conf.read_text()) == set()
    assert placeholders(TEMPLATE.read_text())  # the template is really templated


def test_nginx_accepts_the_rendered_config(rendered):
    configs, settings = rendered
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        native.nginx_command(settings, configs, "-t"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


# gixy checks switched off, each with its reason; any other finding fails the test.
GIXY_SKIPPED_CHECKS = {
    # `proxy_pass http://upstream/;` strips the /wsgi/ or /asgi/ prefix from the URI nginx has
    # already decoded and normalised. That is what we want: the services get canonical paths, and
    # nothing private is routed to them (metrics and status live on ports nginx never proxies).
    "proxy_pass_normalized": "prefix stripping on normalised URIs is intended",
    # HSTS is per host name, not per port: sent from https://localhost:8443 it would make
    # browsers upgrade http://localhost:8080 (the plain port, which speaks no TLS) and break it.
    "hsts_header": "the plain port shares the host name and must stay reachable",
    # worker_connections already counts both sides of a proxied request, one descriptor each;
    # stackctl.capacity sets it to worker_rlimit_nofile minus a reserve. Doubling the limit
    # would halve the connections the same descriptor budget holds.
    "worker_rlimit_nofile_vs_connections": "worker_connections counts upstream sockets too",
}


def test_nginx_config_analyser_finds_nothing(rendered):
    configs, _ = rendered
    gixy = Path(sys.executable).parent / "gixy"
    result = subprocess.run(
        [str(gixy), "--skips", ",".join(GIXY_SKIPPED_CHECKS), str(configs.nginx_conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_websocket_upgrade_map_keeps_upstream_keepalive_for_plain_requests():
    text = TEMPLATE.read_text()
    # An empty Upgrade header must map to an empty Connection header (not "close").
    assert "map $http_upgrade $connection_upgrade" in text
    map_block = text.split("map $http_upgrade $connection_upgrade", 1)[1].split("}", 1)[0]
    assert '""      "";' in map_block
    assert "close" not in map_block
    assert "proxy_http_version 1.1;" in text


def test_the_longest_poll_ends_before_nginx_stops_reading():
    # GET /poll answers 204 at its timeout; nginx must still be reading then (else a 504).
    text = TEMPLATE.read_text()
    server_level = re.findall(r"^ {8}proxy_read_timeout (\d+)s;", text, re.MULTILINE)
    assert len(server_level) == 1, server_level
    assert int(server_level[0]) > POLL_TIMEOUT_MS_MAX / 1000
    assert "/poll" not in text  # no location of its own overrides the server's timeout
