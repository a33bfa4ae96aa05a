"""Grafana's own schemas, applied to what we provision (Grafana itself does not run here).

* Every dashboard in monitoring/grafana/dashboards is type-checked by `tsc` against
  @grafana/schema, the dashboard schema Grafana publishes, at the version of the Grafana image in
  docker-compose.yml. Each dashboard becomes one TypeScript module whose JSON is an object literal
  assigned to a typed constant, so TypeScript's excess-property check rejects unknown keys at
  every depth, as well as wrong types and values outside an enum. The type is built in
  grafana_schema/dashboard.ts from the published types only (panels per plugin type).
* Negative controls: copies of a dashboard, each broken in one planted way, go through the same
  `tsc` run and must each fail for that reason, so a check that lets everything through fails.
* The provisioning files are validated against JSON Schemas written from Grafana's provisioning
  documentation (Grafana publishes none), again with broken copies that must fail.

The checker is installed by `make node-deps` (npm ci from the lock file); without it these tests
fail rather than skip.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import yaml

from monitoring.grafana import build_dashboards as builder
from tests import dashboard_queries as readback

ROOT = Path(__file__).resolve().parents[2]
CHECK_DIR = Path(__file__).resolve().parent / "grafana_schema"
TSC = CHECK_DIR / "node_modules" / ".bin" / "tsc"
TYPES_MODULE = CHECK_DIR / "dashboard.ts"
PROVISIONING_DIR = ROOT / "monitoring" / "grafana" / "provisioning"
PROVISIONING_SCHEMAS = CHECK_DIR / "provisioning"
COMPOSE_FILE = ROOT / "docker-compose.yml"
# The dashboard every broken copy starts from: it has variables, rows and every panel type.
CONTROL_BASE = "wsgi-vs-asgi.json"

# tsc --pretty false: one line per diagnostic, continuation lines indented.
TSC_ERROR = re.compile(
    r"^(?P<file>\S.*?)\((?P<line>\d+),\d+\): error (?P<code>TS\d+): (?P<text>.*)$"
)

pytestmark = pytest.mark.static


@dataclass(frozen=True)
class TscError:
    file: str
    line: int
    code: str
    text: str


@dataclass(frozen=True)
class Breakage:
    """One planted schema violation and the tsc error it must cause."""

    name: str
    apply: Callable[[dict], None]
    code: str  # TS2322 wrong type or value, TS2353 unknown property, TS2741 missing property
    token: str  # found on the offending line or in the error text


def _first(board: dict, panel_type: str) -> dict:
    return next(p for p in readback.iter_panels(board["panels"]) if p["type"] == panel_type)


def _set(path: Callable[[dict], dict], key: str, value: object) -> Callable[[dict], None]:
    def apply(board: dict) -> None:
        path(board)[key] = value

    return apply


def _drop_ref_id(board: dict) -> None:
    del _first(board, "timeseries")["targets"][0]["refId"]


BREAKAGES = [
    Breakage(
        "unknown top-level key", _set(lambda b: b, "refreshEvery", "5s"), "TS2353", "refreshEvery"
    ),
    Breakage(
        "schemaVersion as a string",
        _set(lambda b: b, "schemaVersion", "39"),
        "TS2322",
        '"schemaVersion"',
    ),
    Breakage(
        "unknown panel key",
        _set(lambda b: _first(b, "timeseries"), "legend", {}),
        "TS2353",
        "legend",
    ),
    Breakage(
        "gridPos width as a string",
        _set(lambda b: _first(b, "stat")["gridPos"], "w", "6"),
        "TS2322",
        '"w"',
    ),
    Breakage(
        "plugin option outside its enum",
        _set(lambda b: _first(b, "timeseries")["options"]["legend"], "displayMode", "sideways"),
        "TS2322",
        '"displayMode"',
    ),
    Breakage(
        "unknown plugin option",
        _set(lambda b: _first(b, "stat")["options"], "sparkline", True),
        "TS2353",
        "sparkline",
    ),
    Breakage(
        "plugin field config of the wrong type",
        _set(
            lambda b: _first(b, "timeseries")["fieldConfig"]["defaults"]["custom"], "lineWidth", "1"
        ),
        "TS2322",
        '"lineWidth"',
    ),
    Breakage(
        "threshold mode outside its enum",
        _set(
            lambda b: _first(b, "stat")["fieldConfig"]["defaults"]["thresholds"], "mode", "relative"
        ),
        "TS2322",
        '"mode"',
    ),
    Breakage(
        "row with queries", _set(lambda b: _first(b, "row"), "targets", []), "TS2353", "targets"
    ),
    Breakage("query without refId", _drop_ref_id, "TS2741", "refId"),
    Breakage(
        "variable hide outside its enum",
        _set(lambda b: b["templating"]["list"][0], "hide", 7),
        "TS2322",
        '"hide"',
    ),
    Breakage(
        "panel type not checked",
        _set(lambda b: _first(b, "gauge"), "type", "graph"),
        "TS2322",
        '"type"',
    ),
]


def _module_name(stem: str) -> str:
    return re.sub(r"\W", "_", stem) + ".ts"


def _write_module(path: Path, board: dict, source: str) -> None:
    # Extensionless: the Bundler resolution finds dashboard.ts; the path is relative so that tsc
    # reports no machine-specific locations.
    types = Path(os.path.relpath(TYPES_MODULE.with_suffix(""), path.parent))
    path.write_text(
        f"// {source}, as JSON in an object literal: excess-property checks apply at every depth.\n"
        f'import type {{ CheckedDashboard, PublishedDashboard }} from "{types.as_posix()}";\n\n'
        f"export const dashboard: CheckedDashboard = {json.dumps(board, indent=2)};\n\n"
        "export const published: PublishedDashboard = dashboard;\n"
    )


def _installed_tsc() -> Path:
    if not TSC.exists():
        pytest.fail(
            f"{TSC.relative_to(ROOT)} is missing: run `make setup` (npm ci in "
            f"{CHECK_DIR.relative_to(ROOT)})",
            pytrace=False,
        )
    return TSC


@dataclass(frozen=True)
class TscRun:
    modules: dict[str, Path]  # dashboard file or breakage name -> generated module
    errors: list[TscError]
    output: str

    def errors_in(self, key: str) -> list[TscError]:
        return [e for e in self.errors if e.file == self.modules[key].name]

    def line(self, key: str, number: int) -> str:
        return self.modules[key].read_text().splitlines()[number - 1]


@pytest.fixture(scope="module")
def tsc_run(tmp_path_factory) -> TscRun:
    """One tsc run over every dashboard and every broken copy (a run takes a few seconds)."""
    tsc = _installed_tsc()
    out = tmp_path_factory.mktemp("grafana-schema")
    boards = readback.load_dashboards(builder.DASHBOARDS_DIR)
    assert set(boards) == set(builder.DASHBOARDS), sorted(boards)
    modules: dict[str, Path] = {}
    for name, board in boards.items():
        modules[name] = out / _module_name(Path(name).stem)
        _write_module(modules[name], board, f"monitoring/grafana/dashboards/{name}")
    for n, breakage in enumerate(BREAKAGES):
        broken = copy.deepcopy(boards[CONTROL_BASE])
        breakage.apply(broken)
        modules[breakage.name] = out / f"broken_{n}.ts"
        _write_module(modules[breakage.name], broken, f"{CONTROL_BASE}, broken: {breakage.name}")
    config = {
        "extends": str(CHECK_DIR / "tsconfig.json"),
        "files": [p.name for p in modules.values()],
    }
    (out / "tsconfig.json").write_text(json.dumps(config, indent=2))
    result = subprocess.run(
        [str(tsc), "--project", "tsconfig.json", "--pretty", "false"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    errors = [
        TscError(m["file"], int(m["line"]), m["code"], m["text"])
        for m in map(TSC_ERROR.match, output.splitlines())
        if m
    ]
    # Broken copies must make tsc fail; a zero exit with errors listed would be a parsing bug.
    assert result.returncode != 0 or not errors, output
    return TscRun(modules, errors, output)


def test_checker_is_pinned_to_the_grafana_release_compose_runs():
    package = json.loads((CHECK_DIR / "package.json").read_text())
    pins = package["devDependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in pins.values()), pins
    image = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["grafana"]["image"]
    assert image == f"grafana/grafana:{pins['@grafana/schema']}"
    lock = json.loads((CHECK_DIR / "package-lock.json").read_text())
    for name, version in pins.items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version, name
    _installed_tsc()
    for name, version in pins.items():
        installed = json.loads((CHECK_DIR / "node_modules" / name / "package.json").read_text())
        assert installed["version"] == version, f"{name}: run `make node-deps`"


def test_every_dashboard_matches_grafanas_published_schema(tsc_run):
    for name in builder.DASHBOARDS:
        found = tsc_run.errors_in(name)
        assert not found, "\n".join(
            f"{name}:{e.line}: {e.code} {e.text}  <- {tsc_run.line(name, e.line).strip()}"
            for e in found
        )
    # Nothing else failed either: not the shared types module, not the published declarations.
    broken = {tsc_run.modules[b.name].name for b in BREAKAGES}
    stray = [e for e in tsc_run.errors if e.file not in broken]
    assert not stray, tsc_run.output


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.name)
def test_a_broken_dashboard_fails_the_check(tsc_run, breakage):
    found = tsc_run.errors_in(breakage.name)
    assert found, f"tsc accepted a dashboard with {breakage.name}"
    assert any(
        e.code == breakage.code
        and (breakage.token in e.text or breakage.token in tsc_run.line(breakage.name, e.line))
        for e in found
    ), "\n".join(f"{e.line}: {e.code} {e.text}" for e in found)


# --------------------------------------------------------------------------- provisioning


def _schema_for(path: Path) -> dict:
    # provisioning/<kind>/*.yml: datasources or dashboards, one schema each.
    kind = path.relative_to(PROVISIONING_DIR).parts[0]
    schema_file = PROVISIONING_SCHEMAS / f"{kind}.schema.json"
    assert schema_file.exists(), f"no schema for provisioning/{kind}"
    schema = json.loads(schema_file.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _violations(doc: object, schema: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


PROVISIONING_FILES = sorted(PROVISIONING_DIR.rglob("*.yml")) + sorted(
    PROVISIONING_DIR.rglob("*.yaml")
)


def test_provisioning_files_exist():
    kinds = {p.relative_to(PROVISIONING_DIR).parts[0] for p in PROVISIONING_FILES}
    assert kinds == {"datasources", "dashboards"}, kinds


@pytest.mark.parametrize("path", PROVISIONING_FILES, ids=lambda p: p.name)
def test_provisioning_file_matches_grafanas_documented_format(path):
    problems = _violations(yaml.safe_load(path.read_text()), _schema_for(path))
    assert not problems, "\n".join(problems)


def _datasource(doc: dict) -> dict:
    return doc["datasources"][0]


def _provider(doc: dict) -> dict:
    return doc["providers"][0]


PROVISIONING_BREAKAGES = {
    "datasource key misspelt": ("datasources", lambda d: _datasource(d).update(isDefualt=True)),
    "apiVersion 2": ("datasources", lambda d: d.update(apiVersion=2)),
    "isDefault as a string": ("datasources", lambda d: _datasource(d).update(isDefault="yes")),
    "unknown Prometheus jsonData key": (
        "datasources",
        lambda d: _datasource(d)["jsonData"].update(scrapeInterval="5s"),
    ),
    "timeInterval not a duration": (
        "datasources",
        lambda d: _datasource(d)["jsonData"].update(timeInterval="five seconds"),
    ),
    "provider type not file": ("dashboards", lambda d: _provider(d).update(type="git")),
    "provider without a path": ("dashboards", lambda d: _provider(d)["options"].pop("path")),
    "provider option misspelt": (
        "dashboards",
        lambda d: _provider(d)["options"].update(foldersFromFileStructure=True),
    ),
}


@pytest.mark.parametrize("name", PROVISIONING_BREAKAGES)
def test_a_broken_provisioning_file_fails_the_schema(name):
    kind, apply = PROVISIONING_BREAKAGES[name]
    (path,) = (p for p in PROVISIONING_FILES if p.relative_to(PROVISIONING_DIR).parts[0] == kind)
    doc = yaml.safe_load(path.read_text())
    apply(doc)
    assert _violations(doc, _schema_for(path)), f"the schema accepted: {name}"
