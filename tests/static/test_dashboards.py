"""Grafana provisioning and dashboards, checked without Grafana (it runs only in Docker mode).

* the dashboard JSON files are well-formed, have unique uids and panel ids, fit the 24-column
  grid, and are exactly what monitoring/grafana/build_dashboards.py builds;
* every panel, every query and every template variable uses the provisioned datasource, whose
  uid is read from the provisioning file;
* every query parses and type-checks as PromQL: all of them go through `promtool check rules`
  as recording rules (the PromQL parser, offline), with template variables set to "All";
* every recording rule a query reads is defined in monitoring/prometheus/rules;
* the provisioning files point at the paths docker-compose.yml mounts.
Whether each query returns data is tests/integration/test_dashboard_queries.py's job.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring.grafana import build_dashboards as builder
from tests import dashboard_queries as readback

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "monitoring" / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
RULES_DIR = ROOT / "monitoring" / "prometheus" / "rules"
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Where docker-compose.yml mounts the provisioning and the dashboards inside the Grafana container.
CONTAINER_PROVISIONING = "/etc/grafana/provisioning"
CONTAINER_DASHBOARDS = "/var/lib/grafana/dashboards"
HOME_DASHBOARD = "wsgi-vs-asgi.json"

RECORDED_NAME = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")

pytestmark = pytest.mark.static


@pytest.fixture(scope="module")
def datasource() -> dict:
    """The one provisioned datasource, as read from its provisioning file."""
    doc = yaml.safe_load(DATASOURCES_FILE.read_text())
    (source,) = doc["datasources"]
    return source


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    boards = readback.load_dashboards(DASHBOARDS_DIR)
    assert set(boards) == {"wsgi-vs-asgi.json", "edge-nginx.json", "load-test.json"}
    return boards


def all_queries(boards: dict[str, dict]) -> list[tuple[dict, object]]:
    return [
        (board, query)
        for board in boards.values()
        for query in readback.variable_queries(board) + readback.panel_queries(board)
    ]


def test_datasource_provisioning(datasource):
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"  # the compose service
    assert datasource["access"] == "proxy"
    assert datasource["isDefault"] is True
    assert datasource["editable"] is False


def test_dashboard_provider_points_at_the_mounted_directory():
    doc = yaml.safe_load(PROVIDERS_FILE.read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == CONTAINER_DASHBOARDS
    assert provider["allowUiUpdates"] is False  # the files are the source of truth


def test_compose_mounts_what_the_provisioning_expects():
    grafana = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["grafana"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    assert (ROOT / mounts[CONTAINER_PROVISIONING]).resolve() == GRAFANA_DIR / "provisioning"
    assert (ROOT / mounts[CONTAINER_DASHBOARDS]).resolve() == DASHBOARDS_DIR
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{CONTAINER_DASHBOARDS}/{HOME_DASHBOARD}"
    assert (DASHBOARDS_DIR / HOME_DASHBOARD).is_file()


def test_dashboards_are_what_the_builder_builds():
    assert builder.main(["--check"]) == 0, "run monitoring/grafana/build_dashboards.py"


def test_dashboards_are_well_formed(dashboards):
    uids = [board["uid"] for board in dashboards.values()]
    assert len(set(uids)) == len(uids), uids
    titles = [board["title"] for board in dashboards.values()]
    assert len(set(titles)) == len(titles), titles
    for name, board in dashboards.items():
        # The JSON itself parses (load_dashboards did) and is stable: uid, version, schema.
        assert re.fullmatch(r"[a-z0-9-]{1,40}", board["uid"]), name
        assert board["schemaVersion"] >= 36, name
        assert board["editable"] is False, name
        panels = list(readback.iter_panels(board["panels"]))
        ids = [panel["id"] for panel in panels]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        # Titles name panels in the tests and in DOCKER_ONLY_PANELS: unique per dashboard.
        titles = [panel["title"] for panel in panels]
        assert len(set(titles)) == len(titles), f"{name}: duplicate panel titles"
        for panel in panels:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (name, panel["title"])
            assert panel["title"], name
            if panel["type"] != "row":
                assert panel.get("description"), (name, panel["title"])
                assert panel["targets"], (name, panel["title"])


def test_every_panel_target_and_variable_uses_the_provisioned_datasource(dashboards, datasource):
    expected = {"type": datasource["type"], "uid": datasource["uid"]}
    for name, board in dashboards.items():
        for panel in readback.iter_panels(board["panels"]):
            if panel["type"] == "row":
                assert "targets" not in panel, (name, panel["title"])
                continue
            assert panel["datasource"] == expected, (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == expected, (name, panel["title"], target["refId"])
        for variable in board["templating"]["list"]:
            assert variable["datasource"] == expected, (name, variable["name"])


def test_every_variable_a_query_uses_is_defined(dashboards):
    for name, board in dashboards.items():
        known = readback.variable_values(board)
        for _, query in all_queries({name: board}):
            expanded = readback.promql(board, query)
            leftover = [m for m in re.findall(r"\$\{?(\w+)", expanded) if not m.isdigit()]
            assert not leftover, (name, query.panel, leftover, sorted(known))


def test_repeated_panels_repeat_over_a_defined_variable(dashboards):
    for name, board in dashboards.items():
        variables = {v["name"] for v in board["templating"]["list"]}
        for panel in readback.iter_panels(board["panels"]):
            if "repeat" in panel:
                assert panel["repeat"] in variables, (name, panel["title"])
                assert f"${panel['repeat']}" in panel["title"], (name, panel["title"])
                # Alone on its line: Grafana puts the repeated copies to its right.
                y = panel["gridPos"]["y"]
                beside = [
                    other["title"]
                    for other in board["panels"]
                    if other is not panel and other["gridPos"]["y"] == y
                ]
                assert not beside, (name, panel["title"], beside)


def promtool_check_exprs(named_exprs: dict[str, str], tmp_path: Path):
    """`promtool check rules` on one recording rule per expression: PromQL parsed offline."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (make system-deps)", pytrace=False)
    groups = [
        # One group per query, so promtool's error names the panel.
        {"name": name, "rules": [{"record": f"gateway_dashboard:query_{n}:check", "expr": expr}]}
        for n, (name, expr) in enumerate(named_exprs.items())
    ]
    rules_file = tmp_path / "dashboard-queries.yml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )


def test_every_query_parses_as_promql(dashboards, tmp_path):
    named = {
        f"{query.dashboard} / {query.panel} / {query.ref}": readback.promql(board, query)
        for board, query in all_queries(dashboards)
    }
    assert len(named) == len(all_queries(dashboards)), "two queries share panel and refId"
    result = promtool_check_exprs(named, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(named)} rules found" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    "expr",
    ["rate(http_requests_total)", "sum by (le (x)", 'histogram_quantile("0.9", up)'],
)
def test_the_parse_check_rejects_broken_promql(expr, tmp_path):
    result = promtool_check_exprs({"broken": expr}, tmp_path)
    assert result.returncode != 0
    assert "broken" in result.stdout + result.stderr


def test_every_recording_rule_a_query_reads_exists(dashboards):
    recorded = {
        rule["record"]
        for path in RULES_DIR.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    for board, query in all_queries(dashboards):
        used = set(RECORDED_NAME.findall(readback.promql(board, query)))
        assert used <= recorded, (query.dashboard, query.panel, sorted(used - recorded))


def test_docker_only_panels_exist_and_are_marked(dashboards):
    panels = {
        (board["uid"], panel["title"]): panel
        for board in dashboards.values()
        for panel in readback.iter_panels(board["panels"])
    }
    assert builder.DOCKER_ONLY_PANELS
    for key in builder.DOCKER_ONLY_PANELS:
        assert key in panels, f"listed Docker-only panel not in a dashboard: {key}"
        assert "Docker mode only" in panels[key]["title"], key
        assert "container_" in json.dumps(panels[key]["targets"]), key
    # ...and no other panel reads cAdvisor's container_* series.
    for key, panel in panels.items():
        if key not in builder.DOCKER_ONLY_PANELS:
            assert "container_" not in json.dumps(panel.get("targets", [])), key
