"""Grafana building blocks: every panel and query gets the same datasource, layout and units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

GRAFANA_DIR = Path(__file__).resolve().parents[1]
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"

SCHEMA_VERSION = 39
TAGS = ["gateway-lab"]


def datasource_uid() -> str:
    """The uid of the provisioned Prometheus datasource (one source of truth: its file)."""
    for line in DATASOURCES_FILE.read_text().splitlines():
        key, _, value = line.strip().partition(":")
        if key == "uid":
            return value.strip().strip("\"'")
    raise SystemExit(f"{DATASOURCES_FILE}: no datasource uid")


DATASOURCE = {"type": "prometheus", "uid": datasource_uid()}

# Colours: the WSGI service is always orange, the ASGI service always blue, everywhere.
SERVICE_COLOURS = {"flask": "orange", "fastapi": "blue"}
INTERFACE_COLOURS = {"wsgi": "orange", "asgi": "blue"}


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> dict:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }


def targets(*pairs: tuple[str, str], instant: bool = False) -> list[dict]:
    return [
        target(expr, legend, chr(ord("A") + i), instant=instant)
        for i, (expr, legend) in enumerate(pairs)
    ]


def colour_overrides(colours: dict[str, str], suffix: str = "") -> list[dict]:
    """Fixed colours for series whose display name starts with a service/interface name."""
    return [
        {
            "matcher": {"id": "byRegexp", "options": f"^{name}{suffix}.*"},
            "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": colour}}],
        }
        for name, colour in colours.items()
    ]


def reference_line(matcher: str, pattern: str, *extra: dict) -> dict:
    """A dashed, unfilled series: a bound (capacity, total) drawn next to what it bounds."""
    return {
        "matcher": {"id": matcher, "options": pattern},
        "properties": [
            *extra,
            {"id": "custom.fillOpacity", "value": 0},
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        ],
    }


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {
        "mode": "absolute",
        "steps": [{"color": colour, "value": value} for value, colour in steps],
    }


def timeseries(
    title: str,
    description: str,
    queries: list[dict],
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    stack: bool = False,
    min_: float | None = 0,
    max_: float | None = None,
    threshold_line: tuple[float, str] | None = None,
    overrides: list[dict] | None = None,
    repeat: str | None = None,
    legend_calcs: tuple[str, ...] = ("mean", "max", "lastNotNull"),
    decimals: int | None = None,
) -> dict:
    custom: dict[str, Any] = {
        "drawStyle": "line",
        "lineInterpolation": "linear",
        "lineWidth": 2,
        "fillOpacity": 25 if stack else 8,
        "gradientMode": "opacity",
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "axisSoftMin": 0 if min_ == 0 else None,
        "thresholdsStyle": {"mode": "line+area" if threshold_line else "off"},
    }
    custom = {k: v for k, v in custom.items() if v is not None}
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "palette-classic"},
        "custom": custom,
        "thresholds": thresholds((None, "transparent"), threshold_line)
        if threshold_line
        else thresholds((None, "green")),
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if decimals is not None:
        defaults["decimals"] = decimals
    panel = {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": list(legend_calcs),
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": queries,
        "_size": (w, h),
    }
    if repeat:
        panel.update({"repeat": repeat, "repeatDirection": "h", "maxPerRow": 2})
    return panel


def stat(
    title: str,
    description: str,
    queries: list[dict],
    *,
    unit: str = "short",
    w: int = 5,
    h: int = 5,
    steps: tuple[tuple[float | None, str], ...] = ((None, "green"),),
    decimals: int | None = None,
    mappings: list[dict] | None = None,
    no_value: str | None = None,
    overrides: list[dict] | None = None,
    kind: str = "stat",
    max_: float | None = None,
) -> dict:
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds"},
        "thresholds": thresholds(*steps),
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if no_value is not None:
        defaults["noValue"] = no_value
    if max_ is not None:
        defaults.update({"min": 0, "max": max_})
    options: dict[str, Any] = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "orientation": "auto",
        "text": {},
    }
    if kind == "stat":
        options.update(
            {
                "colorMode": "background",
                "graphMode": "area",
                "justifyMode": "auto",
                "textMode": "value_and_name",
                "wideLayout": True,
            }
        )
    else:
        options.update({"showThresholdLabels": False, "showThresholdMarkers": True})
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options,
        "targets": queries,
        "_size": (w, h),
    }


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def layout(panels: list[dict]) -> list[dict]:
    """Place panels left to right, wrapping at 24 columns.

    A row, and a repeated panel, each get a line of their own: Grafana places the repeated
    copies to the right of the original, where a neighbour would be pushed out of place.
    """
    x = y = line_height = 0
    placed = []
    for number, panel in enumerate(panels, start=1):
        w, h = panel.pop("_size")
        alone = panel["type"] == "row" or "repeat" in panel
        if alone or x + w > 24:
            y += line_height
            x = line_height = 0
        panel = {"id": number, "gridPos": {"h": h, "w": w, "x": x, "y": y}, **panel}
        placed.append(panel)
        x += w
        line_height = max(line_height, h)
        if alone:
            y += h
            x = line_height = 0
    return placed


def query_variable(name: str, label: str, query: str, description: str) -> dict:
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
        "skipUrlSync": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[dict],
    variables: list[dict] | None = None,
    refresh: str = "5s",
    time_from: str = "now-15m",
) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "editable": False,
        "graphTooltip": 1,
        "liveNow": False,
        "refresh": refresh,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "timezone": "browser",
        "time": {"from": time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["5s", "10s", "30s", "1m", "5m"]},
        "fiscalYearStartMonth": 0,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "gateway-lab dashboards",
                "type": "dashboards",
                "tags": TAGS,
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": variables or []},
        "panels": layout(panels),
    }
