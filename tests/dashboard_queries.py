"""Reading the built dashboards back: every PromQL query they hold, as Prometheus would get it.

The static test parses these queries, the integration test runs them against the native stack.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from monitoring.grafana.build_dashboards import DASHBOARDS_DIR

# Grafana's built-in variables, as the tests substitute them: $__rate_interval is at least 4
# scrape intervals (20 s), the recording rules use 1m, so 1m is a fair stand-in.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "15m",
    "__range_s": "900",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(.+),\s*)?(\w+)\s*\)\s*$", re.S)


@dataclass(frozen=True)
class Query:
    dashboard: str  # uid
    panel: str  # title
    ref: str  # refId, or "variable" for a template variable
    expr: str  # as written in the dashboard

    @property
    def key(self) -> tuple[str, str]:
        return (self.dashboard, self.panel)


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def iter_panels(panels: list[dict]):
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def variable_values(board: dict) -> dict[str, str]:
    """Template variable -> a regex matching all its values (what "All" means), plus built-ins."""
    values = dict(BUILTIN_VARIABLES)
    for variable in board.get("templating", {}).get("list", []):
        values[variable["name"]] = variable.get("allValue") or ".+"
    return values


def expand(expr: str, values: dict[str, str]) -> str:
    """Substitute $name / ${name} for known variables; anything else ($1, ${1}) stays."""

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def variable_promql(query: str) -> str:
    """label_values(selector, label) as PromQL that returns one series per value."""
    match = _LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"unsupported variable query: {query!r}")
    selector, label = match.group(1) or '{__name__=~".+"}', match.group(2)
    return f"count by ({label}) ({selector})"


def panel_queries(board: dict) -> list[Query]:
    uid = board["uid"]
    found = []
    for panel in iter_panels(board.get("panels", [])):
        for t in panel.get("targets", []):
            found.append(Query(uid, panel["title"], t["refId"], t["expr"]))
    return found


def variable_queries(board: dict) -> list[Query]:
    return [
        Query(board["uid"], f"${v['name']}", "variable", variable_promql(v["query"]["query"]))
        for v in board.get("templating", {}).get("list", [])
        if v.get("type") == "query"
    ]


def promql(board: dict, query: Query) -> str:
    """The query as Prometheus would receive it with every variable set to "All"."""
    return expand(query.expr, variable_values(board))
