"""The edge dashboard: nginx's connections, request rate and the status codes behind it."""

from __future__ import annotations

from .panels import dashboard, row, stat, targets, timeseries


def build() -> dict:
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
