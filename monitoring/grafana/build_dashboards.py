"""Build the Grafana dashboards of gateway-lab (dashboards/*.json) from one description.

The JSON files are what Grafana provisions; this script is their source, so every panel and
every query gets the same datasource, layout rules and units. After editing it:

    .venv/bin/python monitoring/grafana/build_dashboards.py          # rewrite dashboards/*.json
    .venv/bin/python monitoring/grafana/build_dashboards.py --check  # exit 1 if they are stale

tests/static/test_dashboards.py runs the check, so the JSON and this file never drift apart.
Every query is evaluated against a real Prometheus by tests/integration/test_dashboard_queries.py;
the panels that can only have data in Docker mode (cAdvisor) are named in DOCKER_ONLY_PANELS.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DASHBOARDS_DIR = HERE / "dashboards"
DATASOURCES_FILE = HERE / "provisioning" / "datasources" / "prometheus.yml"

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

# Panels whose series exist only in Docker mode (cAdvisor runs only there). The integration
# test checks that these, and only these, return nothing on the native stack.
DOCKER_ONLY_PANELS = {
    ("gateway-wsgi-vs-asgi", "Container CPU (Docker mode only, cAdvisor)"),
    ("gateway-wsgi-vs-asgi", "Container memory (Docker mode only, cAdvisor)"),
}

# Selector of the template variables of the WSGI-vs-ASGI dashboard.
SEL = 'service=~"$service", instance=~"$instance"'

# Colours: the WSGI service is always orange, the ASGI service always blue, everywhere.
SERVICE_COLOURS = {"flask": "orange", "fastapi": "blue"}
INTERFACE_COLOURS = {"wsgi": "orange", "asgi": "blue"}


# ---- building blocks ----------------------------------------------------------------------


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


# ---- dashboards ---------------------------------------------------------------------------

LOCUST_ONLY = "Has data only while a load test runs (Locust registers itself with Prometheus)."


def host_panels() -> list[dict]:
    return [
        row("Host (node exporter) · containers (cAdvisor, Docker mode only)"),
        timeseries(
            "Host CPU busy by mode",
            "Share of all CPUs busy, by mode (node exporter). Locust runs on the same host in "
            "a lab: when CPU is near 100% the load generator and the services compete, and "
            "every latency number on this dashboard includes that.",
            targets(
                (
                    'sum by (mode) (rate(node_cpu_seconds_total{mode!="idle"}[$__rate_interval]))'
                    ' / scalar(count(node_cpu_seconds_total{mode="idle"}))',
                    "{{mode}}",
                ),
            ),
            unit="percentunit",
            max_=1,
            stack=True,
            w=6,
        ),
        timeseries(
            "Host memory",
            "Memory in use (total minus available) and the total (node exporter).",
            targets(
                ("node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes", "in use"),
                ("node_memory_MemTotal_bytes", "total"),
            ),
            unit="bytes",
            w=6,
            overrides=[reference_line("byName", "total")],
        ),
        timeseries(
            "Container CPU (Docker mode only, cAdvisor)",
            "CPU cores used per container (cAdvisor). Docker mode only: the native stack has "
            "no cAdvisor, so this panel is empty there.",
            targets(
                (
                    'sum by (name) (rate(container_cpu_usage_seconds_total{name!=""}'
                    "[$__rate_interval]))",
                    "{{name}}",
                ),
            ),
            unit="short",
            w=6,
        ),
        timeseries(
            "Container memory (Docker mode only, cAdvisor)",
            "Working-set memory per container (cAdvisor; what the OOM killer looks at). Docker "
            "mode only: the native stack has no cAdvisor, so this panel is empty there.",
            targets(('sum by (name) (container_memory_working_set_bytes{name!=""})', "{{name}}")),
            unit="bytes",
            w=6,
        ),
    ]


def wsgi_vs_asgi() -> dict:
    variables = [
        query_variable(
            "service",
            "Service",
            "label_values(http_requests_total, service)",
            "The services (flask = WSGI on Gunicorn, fastapi = ASGI on Uvicorn).",
        ),
        query_variable(
            "instance",
            "Instance",
            'label_values(http_requests_total{service=~"$service"}, instance)',
            "The metrics endpoint of each service's master process.",
        ),
    ]
    by_service = colour_overrides(SERVICE_COLOURS)
    panels = [
        row("At a glance"),
        stat(
            "Load test users",
            "Users Locust is running now. " + LOCUST_ONLY,
            targets(("sum by (target) (locust_users)", "{{target}}")),
            w=4,
            no_value="no load test",
            steps=((None, "blue"),),
        ),
        stat(
            "Requests/s",
            "Requests each service finished per second (1m rate).",
            targets((f"service:http_requests:rate1m{{{SEL}}}", "{{service}}")),
            unit="reqps",
            steps=((None, "green"),),
        ),
        stat(
            "In flight now",
            "Requests inside each service right now. A sync WSGI service can never show more "
            "than its capacity (workers × threads); the ASGI service holds as many as arrive.",
            targets((f"service:http_requests_in_progress:sum{{{SEL}}}", "{{service}}")),
            steps=((None, "green"),),
            decimals=0,
        ),
        stat(
            "WSGI saturation now",
            "Busy WSGI workers (× threads) / capacity, now. At 100% every further request waits "
            "in the listen backlog, where the service cannot see it. Alert WSGISaturated: 1m "
            "average ≥ 90% for 2m.",
            targets((f"service:server_worker_saturation:ratio{{{SEL}}}", "{{service}}")),
            unit="percentunit",
            kind="gauge",
            max_=1,
            steps=((None, "green"), (0.7, "orange"), (0.9, "red")),
        ),
        stat(
            "5xx ratio",
            "Share of each service's own answers that were 5xx (1m). Alert High5xxRatio: > 5% "
            "for 2m. nginx's own 502/503/504 are not counted here.",
            targets((f"service:http_requests_5xx:ratio_rate1m{{{SEL}}}", "{{service}}")),
            unit="percentunit",
            steps=((None, "green"), (0.01, "orange"), (0.05, "red")),
            decimals=1,
        ),
        row("Concurrency: sync workers vs event loops"),
        timeseries(
            "In flight vs capacity — $service",
            "Requests inside the service: sampled now, and the 1m mean by Little's law "
            "(request-seconds finished per second). The dashed line is the capacity: for WSGI "
            "the workers × threads it can run at once (in flight stops there, the rest queue "
            "outside); for ASGI the number of event loops, which each hold many requests.",
            targets(
                (f"service:http_requests_in_progress:sum{{{SEL}}}", "in flight (now)"),
                (
                    f"service:http_request_duration_seconds_sum:rate1m{{{SEL}}}",
                    "in flight (1m mean, Little's law)",
                ),
                (f"service:server_worker_capacity:max{{{SEL}}}", "capacity"),
            ),
            repeat="service",
            h=9,
            overrides=[
                reference_line(
                    "byName",
                    "capacity",
                    {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                )
            ],
        ),
        timeseries(
            "WSGI worker saturation",
            "Busy share of the WSGI capacity: now, and averaged over 1m (what the "
            "WSGISaturated alert reads, red zone from 90%). It cannot pass 100%: requests that "
            "find every worker busy wait in the listen backlog, invisible to the service — "
            "compare 'Where the requests are' on the Load test dashboard.",
            targets(
                (f"service:server_worker_saturation:ratio{{{SEL}}}", "{{service}} now"),
                (f"service:server_worker_saturation:ratio_avg1m{{{SEL}}}", "{{service}} 1m avg"),
            ),
            unit="percentunit",
            max_=1,
            threshold_line=(0.9, "red"),
        ),
        timeseries(
            "Requests held per worker process",
            "In-flight requests / worker processes. A sync Gunicorn worker holds at most one "
            "(gthread: its thread count); a Uvicorn worker's event loop holds as many as are "
            "waiting on I/O at once.",
            targets(
                (
                    f"service:http_requests_in_progress:per_worker{{{SEL}}}",
                    "{{service}} ({{interface}})",
                )
            ),
            overrides=by_service,
        ),
        row("Throughput and errors"),
        timeseries(
            "Request rate",
            "Requests each service finished per second (1m rate).",
            targets(
                (f"service:http_requests:rate1m{{{SEL}}}", "{{service}} ({{interface}})"),
            ),
            unit="reqps",
            overrides=by_service,
        ),
        timeseries(
            "5xx error ratio",
            "Share of each service's answers that were 5xx (1m). Red zone: the High5xxRatio "
            "alert's 5%. 0 when a service answered no 5xx; a gap when it served nothing "
            "(0 / 0).",
            targets(
                (
                    f"service:http_requests_5xx:ratio_rate1m{{{SEL}}}",
                    "{{service}} ({{interface}})",
                ),
            ),
            unit="percentunit",
            threshold_line=(0.05, "red"),
            overrides=by_service,
        ),
        timeseries(
            "Responses by status — $service",
            "Answers per second by HTTP status (1m rate), as the service counted them.",
            targets((f"service_status:http_requests:rate1m{{{SEL}}}", "{{status}}")),
            unit="reqps",
            stack=True,
            repeat="service",
        ),
        timeseries(
            "Requests by route — $service",
            "Answers per second by route template (1m rate); <unmatched> is 404s.",
            targets((f"service_route:http_requests:rate1m{{{SEL}}}", "{{route}}")),
            unit="reqps",
            stack=True,
            repeat="service",
        ),
        row("Latency inside the services"),
        timeseries(
            "Latency p50 / p95 / p99 — $service",
            "Time from the moment a worker starts a request to the end of its response body, "
            "all routes (histogram quantiles over 1m). Time spent waiting for a free WSGI "
            "worker is not in here: see the client-side latency on the Load test dashboard.",
            targets(
                (f"service:http_request_duration_seconds:p50_rate1m{{{SEL}}}", "p50"),
                (f"service:http_request_duration_seconds:p95_rate1m{{{SEL}}}", "p95"),
                (f"service:http_request_duration_seconds:p99_rate1m{{{SEL}}}", "p99"),
            ),
            unit="s",
            repeat="service",
        ),
        timeseries(
            "p95 by route — $service",
            "95th percentile per route (1m). /io, /stream and /cpu take what the caller asked "
            "for; /hello, /healthz and /echo should stay in milliseconds.",
            targets(
                (f"service_route:http_request_duration_seconds:p95_rate1m{{{SEL}}}", "{{route}}")
            ),
            unit="s",
            repeat="service",
        ),
        timeseries(
            "p95 of the fast routes vs the 250 ms budget",
            "95th percentile of /hello, /healthz and /echo only (1m). Red zone: the "
            "HighP95Latency alert's 250 ms budget (fires after 3m over it). On ASGI a blocked "
            "event loop (/io/blocking, heavy /cpu) shows up here first.",
            targets(
                (
                    f"service:http_request_duration_seconds:p95_fast_routes_rate1m{{{SEL}}}",
                    "{{service}} ({{interface}})",
                ),
            ),
            unit="s",
            threshold_line=(0.25, "red"),
            overrides=by_service,
        ),
        timeseries(
            "Mean latency",
            "Mean time per request, all routes (1m: duration sum / count).",
            targets(
                (
                    f"service:http_request_duration_seconds:mean_rate1m{{{SEL}}}",
                    "{{service}} ({{interface}})",
                ),
            ),
            unit="s",
            overrides=by_service,
        ),
        row("WebSockets (ASGI only)"),
        timeseries(
            "Open WebSocket connections",
            "Open WebSocket connections per route. Each one is a coroutine on an event loop, "
            "not a worker: a sync WSGI worker would be taken for the connection's whole life.",
            targets(
                (
                    f"service_route:websocket_connections:sum{{{SEL}}}",
                    "{{service}} {{route}}",
                )
            ),
            decimals=0,
        ),
        timeseries(
            "WebSocket messages/s",
            "Messages per second by route and direction (1m rate). In a chat room of N, each "
            "message in goes out N times.",
            targets(
                (
                    f"service_route_direction:websocket_messages:rate1m{{{SEL}}}",
                    "{{route}} {{direction}}",
                )
            ),
            unit="short",
        ),
        *host_panels(),
    ]
    return dashboard(
        "gateway-wsgi-vs-asgi",
        "gateway-lab · WSGI vs ASGI",
        "Flask on Gunicorn (sync workers) next to FastAPI on Uvicorn (event loops): throughput, "
        "latency, in-flight requests against capacity, WSGI saturation, errors and WebSockets. "
        "How to read it: docs/monitoring.md.",
        panels,
        variables,
    )


def edge_nginx() -> dict:
    up_mapping = [
        {
            "type": "value",
            "options": {
                "0": {"text": "DOWN", "color": "red", "index": 0},
                "1": {"text": "UP", "color": "green", "index": 1},
            },
        }
    ]
    panels = [
        row("nginx (stub_status, via the nginx exporter)"),
        stat(
            "nginx",
            "Whether the exporter could read nginx's stub_status at its last scrape (alert "
            "NginxDown after 1m).",
            targets(("nginx_up", "{{instance}}")),
            w=4,
            mappings=up_mapping,
            steps=((None, "red"), (1, "green")),
        ),
        stat(
            "Requests/s",
            "Requests nginx handled per second (1m rate), every location and status.",
            targets(("instance:nginx_http_requests:rate1m", "{{instance}}")),
            unit="reqps",
        ),
        stat(
            "Active client connections",
            "Client connections open now: reading + writing + waiting (idle keep-alive).",
            targets(("nginx_connections_active", "{{instance}}")),
            decimals=0,
        ),
        stat(
            "Dropped connections/s",
            "Accepted minus handled connections per second: non-zero only when nginx runs out "
            "of worker_connections.",
            targets(("instance:nginx_connections_dropped:rate1m", "{{instance}}")),
            steps=((None, "green"), (0.001, "red")),
        ),
        stat(
            "Scrape targets",
            "Every Prometheus target, UP or DOWN (alert TargetDown after 1m). locust appears "
            "only while a load test runs.",
            targets(("up", "{{job}}")),
            mappings=up_mapping,
            steps=((None, "red"), (1, "green")),
        ),
        timeseries(
            "Client connections by state",
            "reading: nginx reads a request header; writing: a request is in progress (waiting "
            "for the upstream, streaming, a WebSocket tunnel); waiting: idle keep-alive. One "
            "'writing' is always the exporter's own stub_status request.",
            targets(
                ("nginx_connections_reading", "reading"),
                ("nginx_connections_writing", "writing"),
                ("nginx_connections_waiting", "waiting"),
            ),
            stack=True,
            decimals=0,
        ),
        timeseries(
            "Requests and connections per second",
            "Requests and accepted connections per second (1m rate). Many requests per "
            "connection mean keep-alive works; dropped > 0 means worker_connections ran out.",
            targets(
                ("instance:nginx_http_requests:rate1m", "requests"),
                ("instance:nginx_connections_accepted:rate1m", "connections accepted"),
                ("instance:nginx_connections_dropped:rate1m", "connections dropped"),
            ),
            unit="short",
        ),
        row("Edge vs services: where requests wait, who answered"),
        timeseries(
            "Requests open at the edge vs inside the services",
            "open at nginx: writing - 1, the requests nginx is working on (the -1 is the "
            "exporter's own stub_status request). in services: HTTP requests a worker is "
            "running plus open WebSockets. The gap is requests that are not in any worker: "
            "in transit between nginx and a service (for millisecond requests that alone is "
            "most of it), being written to slow clients, or — the one that grows with load — "
            "queued in a saturated WSGI service's listen backlog. Both sides are samples taken "
            "at slightly different moments: read the trend, not a single point.",
            targets(
                ("sum(nginx_connections_writing) - 1", "open at nginx"),
                (
                    "sum(service:http_requests_in_progress:sum)"
                    " + (sum(service:websocket_connections:sum) or vector(0))",
                    "in services",
                ),
                (
                    "clamp_min(sum(nginx_connections_writing) - 1"
                    " - sum(service:http_requests_in_progress:sum)"
                    " - (sum(service:websocket_connections:sum) or vector(0)), 0)",
                    "waiting outside a worker (estimate)",
                ),
            ),
            decimals=0,
        ),
        timeseries(
            "Requests at the edge vs answered by the services",
            "nginx's request rate next to the sum of the services' (1m). The difference is "
            "what nginx answered itself or the services do not count as HTTP: the landing "
            "page, paths outside /wsgi and /asgi, 413, 502/503/504, WebSocket handshakes and "
            "the exporter's stub_status scrapes.",
            targets(
                ("sum(instance:nginx_http_requests:rate1m)", "nginx"),
                ("sum(service:http_requests:rate1m)", "services"),
            ),
            unit="reqps",
        ),
        timeseries(
            "Public responses by status class (counted by the services)",
            "stub_status has no status codes, so these are the services' own answers, by "
            "service and class, as clients behind nginx received them. nginx's own answers "
            "(404 outside /wsgi and /asgi, 413, 502/503/504) are not in any metric: read "
            "them in nginx's JSON access log (status, upstream_status).",
            targets(
                (
                    "sum by (service, class) (label_replace(service_status:http_requests:rate1m,"
                    ' "class", "${1}xx", "status", "(.).*"))',
                    "{{service}} {{class}}",
                ),
            ),
            unit="reqps",
            stack=True,
            w=24,
        ),
    ]
    return dashboard(
        "gateway-edge-nginx",
        "gateway-lab · Edge (nginx)",
        "nginx in front of both services: connections by state, request rate, dropped "
        "connections, and what stub_status cannot tell (status codes) taken from the services.",
        panels,
    )


def load_test() -> dict:
    client_rate = "sum by (target) (rate(locust_requests_total[$__rate_interval]))"
    client_failures = "sum by (target) (rate(locust_failures_total[$__rate_interval]))"
    panels = [
        row("Load (Locust, client side) — data only while a load test runs"),
        stat(
            "Users",
            "Users Locust is running, per target service. " + LOCUST_ONLY,
            targets(("sum by (target) (locust_users)", "{{target}}")),
            w=4,
            no_value="no load test",
            steps=((None, "blue"),),
        ),
        stat(
            "Requests/s sent",
            "Requests per second Locust completed, per target (rate of locust_requests_total).",
            targets((client_rate, "{{target}}")),
            unit="reqps",
            no_value="no load test",
        ),
        stat(
            "Failures",
            "Share of Locust's requests that failed (any non-200, connection error, "
            "WebSocket error), per target.",
            targets((f"{client_failures} / {client_rate}", "{{target}}")),
            unit="percentunit",
            no_value="no load test",
            steps=((None, "green"), (0.01, "orange"), (0.05, "red")),
            decimals=1,
        ),
        stat(
            "Client p95 (slowest request type)",
            "Highest 95th percentile response time Locust measured (last ~10 s) over its "
            "request types, per target.",
            targets(
                ('max by (target) (locust_response_time_seconds{quantile="0.95"})', "{{target}}")
            ),
            unit="s",
            no_value="no load test",
        ),
        stat(
            "Locust CPU",
            "CPU of the Locust process. Above ~90% Locust itself is the bottleneck and its "
            "numbers understate what the servers could do: add Locust worker processes.",
            targets(("max(locust_cpu_usage_percent)", "locust")),
            unit="percent",
            no_value="no load test",
            steps=((None, "green"), (75, "orange"), (90, "red")),
        ),
        row("Throughput: what Locust sent vs what the services served"),
        timeseries(
            "Where the requests are: users vs in flight inside the services",
            "Locust's users are a closed loop (each waits for its answer before sending the "
            "next), so users ≈ requests outstanding. Against WSGI, 'in flight' stops at the "
            "worker capacity and the rest wait in the listen backlog; against ASGI, in flight "
            "follows the users. The gap is the queue the service cannot see.",
            targets(
                ("sum by (target) (locust_users)", "users → {{target}}"),
                (
                    "service:http_requests_in_progress:sum",
                    "{{interface}} in flight ({{service}})",
                ),
                ("service:server_worker_capacity:max", "{{interface}} capacity ({{service}})"),
            ),
            overrides=[reference_line("byRegexp", ".*capacity.*")],
        ),
        timeseries(
            "Requests/s: client vs server",
            "What Locust completed per second next to what each service finished (1m rate). "
            "With a closed loop, throughput = users / response time: when a WSGI service "
            "saturates, adding users stops adding throughput.",
            targets(
                (client_rate, "client → {{target}}"),
                ("service:http_requests:rate1m", "server {{interface}} ({{service}})"),
            ),
            unit="reqps",
        ),
        timeseries(
            "Requests/s by request type",
            "Locust's request rate per request type and target.",
            targets(
                (
                    "sum by (target, name) (rate(locust_requests_total[$__rate_interval]))",
                    "{{target}} {{name}}",
                )
            ),
            unit="reqps",
        ),
        timeseries(
            "Failures/s by request type",
            "Locust's failures per second per request type and target (0 while all is well).",
            targets(
                (
                    "sum by (target, name) (rate(locust_failures_total[$__rate_interval]))",
                    "{{target}} {{name}}",
                )
            ),
            unit="short",
        ),
        row("Latency: client side vs inside the services"),
        timeseries(
            "Client p95 vs server p95",
            "Locust's 95th percentile (slowest request type, last ~10 s) next to each "
            "service's own p95 (1m). The server only counts from the moment a worker picks a "
            "request up: the gap is time spent queueing for a worker (the listen backlog of a "
            "saturated WSGI service), in nginx, on the network and in Locust itself.",
            targets(
                (
                    'max by (target) (locust_response_time_seconds{quantile="0.95"})',
                    "client p95 → {{target}}",
                ),
                (
                    "service:http_request_duration_seconds:p95_rate1m",
                    "server p95 {{interface}} ({{service}})",
                ),
            ),
            unit="s",
        ),
        timeseries(
            "Client response time percentiles by request type",
            "p50 / p95 / p99 Locust measured per request type (last ~10 s).",
            targets(("locust_response_time_seconds", "{{target}} {{name}} q{{quantile}}")),
            unit="s",
        ),
        timeseries(
            "WSGI worker saturation during the test",
            "Busy share of the WSGI capacity (now, and 1m average). Pinned at 100% while "
            "client latency climbs = requests queue for a worker.",
            targets(
                ("service:server_worker_saturation:ratio", "{{service}} now"),
                ("service:server_worker_saturation:ratio_avg1m", "{{service}} 1m avg"),
            ),
            unit="percentunit",
            max_=1,
            threshold_line=(0.9, "red"),
        ),
        timeseries(
            "Server latency p50 / p95 / p99",
            "Each service's own percentiles, all routes (1m).",
            targets(
                ("service:http_request_duration_seconds:p50_rate1m", "{{service}} p50"),
                ("service:http_request_duration_seconds:p95_rate1m", "{{service}} p95"),
                ("service:http_request_duration_seconds:p99_rate1m", "{{service}} p99"),
            ),
            unit="s",
        ),
    ]
    return dashboard(
        "gateway-load-test",
        "gateway-lab · Load test",
        "Locust's view (users, requests, failures, client-side percentiles) next to the "
        "servers' own numbers. Panels read from Locust have data only while a load test runs.",
        panels,
        time_from="now-30m",
    )


# ---- reading the JSON back (used by the tests) ------------------------------------------

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


DASHBOARDS = {
    "wsgi-vs-asgi.json": wsgi_vs_asgi,
    "edge-nginx.json": edge_nginx,
    "load-test.json": load_test,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a JSON file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = DASHBOARDS_DIR / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
    if stale:
        print(
            f"stale dashboards: {', '.join(stale)}; run {Path(__file__).name} to rebuild",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
