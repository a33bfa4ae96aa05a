"""The WSGI-vs-ASGI dashboard: both services side by side, and the host under them."""

from __future__ import annotations

from .panels import (
    SERVICE_COLOURS,
    colour_overrides,
    dashboard,
    query_variable,
    reference_line,
    row,
    stat,
    targets,
    timeseries,
)
from .queries import LOCUST_ONLY, SEL


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


def replica_panels() -> list[dict]:
    """Each replica on its own line, from the raw metrics (every other panel sums replicas)."""
    wsgi_sel = f'{SEL}, interface="wsgi"'
    return [
        row("Per replica (SCALE=N in Docker mode; one replica natively)"),
        stat(
            "Replicas scraped",
            "Replicas of each service Prometheus scrapes now: one per `instance` (master "
            "process) that exports its worker count. Docker mode finds them by DNS, so "
            "`SCALE=N` shows N here; a replica that stops answering drops out at once.",
            targets((f"count by (service) (server_workers{{{SEL}}})", "{{service}}")),
            w=6,
            h=8,
            steps=((None, "blue"),),
            decimals=0,
        ),
        timeseries(
            "Requests/s per replica",
            "Requests each replica finished per second. nginx balances round-robin over "
            "every replica it resolves: the lines of one service should run together, and "
            "add up to the service's line in Request rate.",
            targets(
                (
                    f"sum by (service, instance) (rate(http_requests_total{{{SEL}}}"
                    "[$__rate_interval]))",
                    "{{service}} {{instance}}",
                ),
            ),
            unit="reqps",
            w=6,
        ),
        timeseries(
            "In flight per replica",
            "Requests inside each replica right now. Their sum is the service's in-flight "
            "line; one replica far above the others is an imbalance the sums hide.",
            targets(
                (
                    f"sum by (service, instance) (http_requests_in_progress{{{SEL}}})",
                    "{{service}} {{instance}}",
                ),
            ),
            w=6,
            decimals=0,
        ),
        timeseries(
            "WSGI saturation per replica",
            "Busy share of each WSGI replica's own capacity, now. The service's saturation "
            "(and the WSGISaturated alert) is over all replicas together: one replica pinned "
            "at 100% while the others have room shows only here.",
            targets(
                (
                    f"sum by (service, instance) (http_requests_in_progress{{{wsgi_sel}}})"
                    " / on (service, instance)"
                    f" sum by (service, instance) (server_worker_capacity{{{wsgi_sel}}})",
                    "{{service}} {{instance}}",
                ),
            ),
            unit="percentunit",
            max_=1,
            w=6,
            threshold_line=(0.9, "red"),
        ),
    ]


def build() -> dict:
    variables = [
        query_variable(
            "service",
            "Service",
            "label_values(http_requests_total, service)",
            "The services (flask = WSGI on Gunicorn, fastapi = ASGI on Uvicorn).",
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
            "outside); for ASGI the number of event loops, which each hold many requests. "
            "All three add up every replica of the service.",
            targets(
                (f"service:http_requests_in_progress:sum{{{SEL}}}", "in flight (now)"),
                (
                    f"service:http_request_duration_seconds_sum:rate1m{{{SEL}}}",
                    "in flight (1m mean, Little's law)",
                ),
                (f"service:server_worker_capacity:sum{{{SEL}}}", "capacity"),
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
        *replica_panels(),
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
