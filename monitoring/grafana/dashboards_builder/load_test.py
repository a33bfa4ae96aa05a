"""The load-test dashboard: Locust's view (client side) next to the servers' own."""

from __future__ import annotations

from .panels import dashboard, reference_line, row, stat, targets, timeseries
from .queries import LOCUST_ONLY


def build() -> dict:
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
                ("service:server_worker_capacity:sum", "{{interface}} capacity ({{service}})"),
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
