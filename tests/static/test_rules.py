"""Prometheus rules and config, checked and unit-tested with the real promtool.

* every rules file passes `promtool check rules`;
* every rule unit test file passes `promtool test rules`;
* every alert is tested both firing and not firing, every recording rule is evaluated by a test;
* the config template, rendered for native mode the way stackctl renders it, passes
  `promtool check config` (which also loads the rule files through its `rule_files` glob).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "monitoring" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
TEMPLATE = PROMETHEUS_DIR / "prometheus.yml.template"

try:
    from stackctl.render import placeholders, render_text, static_discovery
    from stackctl.routes import prometheus_discovery
except ImportError:  # not installed into the environment: use the source tree
    sys.path.insert(0, str(ROOT / "services"))
    from stackctl.render import placeholders, render_text, static_discovery
    from stackctl.routes import prometheus_discovery

pytestmark = pytest.mark.static

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (make system-deps)", pytrace=False)
    return path


def run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def load_rules() -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def load_rule_tests() -> list[dict]:
    return [test for path in RULE_TEST_FILES for test in yaml.safe_load(path.read_text())["tests"]]


def test_there_are_rules_and_rule_tests():
    assert {p.name for p in RULE_FILES} >= {"recording.yml", "alerts.yml"}
    assert RULE_TEST_FILES


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool, path):
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", RULE_TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(promtool, path):
    # rule_files in a test file are relative to the test file, so run from its directory.
    result = run([promtool, "test", "rules", path.name], cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_rule_test_file_loads_only_files_of_the_rules_dir():
    for path in RULE_TEST_FILES:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            assert (path.parent / rule_file).resolve().parent == RULES_DIR, (path, rule_file)


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert alerts, "no alerts in the rules dir"
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in load_rule_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert alerts <= firing, f"alerts never tested firing: {sorted(alerts - firing)}"
    assert alerts <= quiet, f"alerts never tested quiet: {sorted(alerts - quiet)}"
    assert (firing | quiet) <= alerts, (
        f"tests of unknown alerts: {sorted((firing | quiet) - alerts)}"
    )


def test_every_recording_rule_is_evaluated_by_a_test():
    recorded = {rule["record"] for rule in load_rules() if "record" in rule}
    tested: set[str] = set()
    for test in load_rule_tests():
        for case in test.get("promql_expr_test", []):
            tested.update(METRIC_NAME.findall(case["expr"]))
    untested = sorted(recorded - tested)
    assert not untested, f"recording rules no test evaluates: {untested}"


def test_rules_follow_the_naming_convention_and_alerts_are_documented():
    for rule in load_rules():
        if "record" in rule:
            level, metric, operations = rule["record"].split(":")
            assert level and metric and operations, rule["record"]
        else:
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
            assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]
            assert "for" in rule, f"{rule['alert']} would fire on a single evaluation"


def native_values(tmp_path: Path) -> dict[str, str]:
    """The values native mode fills in (docs/architecture.md, test profile ports)."""
    return {
        "PROMETHEUS_SELF_TARGET": "127.0.0.1:19090",
        "WSGI_METRICS_DISCOVERY": static_discovery("127.0.0.1:19101"),
        "ASGI_METRICS_DISCOVERY": static_discovery("127.0.0.1:19102"),
        "NGINX_EXPORTER_TARGET": "127.0.0.1:19113",
        "NODE_EXPORTER_TARGET": "127.0.0.1:19100",
        "REDIS_EXPORTER_TARGET": "127.0.0.1:19121",
        "CADVISOR_DISCOVERY": "static_configs: [{targets: []}]",
        "VARIANT_METRICS_DISCOVERY": prometheus_discovery(["127.0.0.1:19211", "127.0.0.1:19212"]),
        "PROMETHEUS_RULES_DIR": str(RULES_DIR),
        "PROMETHEUS_TARGETS_DIR": str(tmp_path / "targets"),
    }


def test_promtool_check_config_of_the_native_render(promtool, tmp_path):
    values = native_values(tmp_path)
    assert placeholders(TEMPLATE.read_text()) == values.keys(), "template placeholders changed"
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(render_text(TEMPLATE.read_text(), values, source=str(TEMPLATE)))
    result = run([promtool, "check", "config", str(rendered)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # The rule_files glob really found the rules (check config loads and checks them).
    for path in RULE_FILES:
        assert str(path) in output, output

    config = yaml.safe_load(rendered.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {
        *("prometheus", "flask", "fastapi", "variants", "nginx", "node", "redis", "cadvisor"),
        "locust",
    }
    assert jobs["cadvisor"]["static_configs"][0]["targets"] == []
    assert jobs["locust"]["file_sd_configs"][0]["files"] == [
        f"{values['PROMETHEUS_TARGETS_DIR']}/locust*.json"
    ]
