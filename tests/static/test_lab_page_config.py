"""The lab page's static side: its one fixed Prometheus query, its scripts, its copy of a rule."""

from __future__ import annotations

import re
import urllib.parse

import pytest
import yaml

from gateway_common.validation import CHAT_ROOM_PATTERN
from stackctl.settings import REPO_ROOT

pytestmark = pytest.mark.static

TEMPLATE = REPO_ROOT / "nginx" / "templates" / "nginx.conf.template"
HTML_DIR = REPO_ROOT / "nginx" / "html"
RECORDING_RULES = REPO_ROOT / "monitoring" / "prometheus" / "rules" / "recording.yml"


def lab_metrics_location() -> str:
    text = TEMPLATE.read_text()
    found = re.search(r"location = /lab/metrics\.json \{(.*?)\n        \}", text, re.DOTALL)
    assert found, "no `location = /lab/metrics.json` in the nginx template"
    return found.group(1)


def fixed_query() -> str:
    rewrite = re.search(
        r'rewrite \^ "/api/v1/query\?query=([^"?]+)\?" break;', lab_metrics_location()
    )
    assert rewrite, "the location must rewrite to one fixed query and drop the client's arguments"
    return urllib.parse.unquote(rewrite.group(1))


def recorded_names() -> set[str]:
    rules = yaml.safe_load(RECORDING_RULES.read_text())
    return {
        rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule
    }


def test_the_fixed_query_selects_only_recorded_service_series():
    query = fixed_query()
    selector = re.fullmatch(r'\{__name__=~"service:\((.+)\)"\}', query)
    assert selector, query
    names = {f"service:{name}" for name in selector.group(1).split("|")}
    assert names <= recorded_names(), names - recorded_names()
    # What the page draws (lab.js's NUMBER_CELLS) is exactly what the query returns.
    script = (HTML_DIR / "lab.js").read_text()
    drawn = set(re.findall(r'"(service:[a-z_:0-9]+)": \{ cell:', script))
    assert drawn == names


def test_the_template_comment_shows_the_query_it_sends():
    assert f"#   {fixed_query()}\n" in TEMPLATE.read_text()


def test_the_fixed_query_path_sends_no_client_input_to_prometheus():
    location = lab_metrics_location()
    assert "proxy_method GET;" in location
    assert "proxy_pass_request_body off;" in location
    assert "$args" not in location and "$request_uri" not in location and "$arg_" not in location


def test_the_page_loads_only_its_own_files():
    page = (HTML_DIR / "index.html").read_text()
    sources = re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', page)
    assert sources and all(
        source.startswith("/") and not source.startswith("//") for source in sources
    )
    for source in sources:
        assert (HTML_DIR / source.lstrip("/")).is_file(), source
        assert re.search(rf"location = {re.escape(source)} \{{", TEMPLATE.read_text()), source


def test_the_page_checks_chat_rooms_by_the_services_rule():
    script = (HTML_DIR / "lab.js").read_text()
    assert f"const CHAT_ROOM_PATTERN = /{CHAT_ROOM_PATTERN}/;" in script


def test_the_landing_page_policy_allows_scripts_and_connections_to_this_host_only():
    policy = re.search(r'add_header Content-Security-Policy "([^"]+)"', TEMPLATE.read_text())
    assert policy
    directives = dict(part.strip().split(" ", 1) for part in policy.group(1).split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
