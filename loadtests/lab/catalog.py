"""The labs, in the order the material makes its claims."""

from __future__ import annotations

from loadtests.lab import cpu_bound, http2_edge, long_lived, loop_stall, race, slow_clients
from loadtests.lab.runner import Lab

LABS: tuple[Lab, ...] = (
    Lab(
        "sync-capacity",
        "sync workers cap concurrency: N waits finish in waves of workers x threads",
        'page: "Race" (WSGI bars); Grafana: WSGI vs ASGI > "In flight vs capacity", '
        '"WSGI worker saturation"',
        race.run_sync,
        (race.N, race.MS),
    ),
    Lab(
        "async-waits",
        "async waits scale: the same N waits on the event loop finish together",
        'page: "Race" (ASGI bars); Grafana: WSGI vs ASGI > "In flight vs capacity", "Request rate"',
        race.run_async,
        (race.N, race.MS),
    ),
    Lab(
        "cpu-bound",
        "CPU-bound work does not speed up with async: throughput bounded by cores/processes",
        'page: "Live numbers"; Grafana: WSGI vs ASGI > "Host CPU busy by mode", "Request rate"',
        cpu_bound.run,
        (cpu_bound.N,),
    ),
    Lab(
        "loop-stall",
        "a blocking call inside async code stalls everything on that event loop",
        'page: "Event-loop stall"; Grafana: WSGI vs ASGI > "p95 by route", "WebSocket messages/s"',
        loop_stall.run,
        (loop_stall.MS,),
    ),
    Lab(
        "long-lived",
        "long-lived connections (SSE) pin sync workers; the event loop is not pinned",
        'page: "Live chat" (its SSE view) and "Live numbers"; Grafana: WSGI vs ASGI > '
        '"In flight vs capacity", "WSGI worker saturation"',
        long_lived.run,
        (long_lived.MS,),
    ),
    Lab(
        "slow-clients",
        "nginx's buffering absorbs slow clients that would starve Gunicorn directly",
        'Grafana: Edge (nginx) > "Client connections by state", "Requests open at the edge vs '
        'inside the services"; page: "Live numbers"',
        slow_clients.run,
    ),
    Lab(
        "http2-edge",
        "HTTP/2 at the edge serves both interfaces (where the stack has an HTTPS port)",
        'Grafana: Edge (nginx) > "Requests and connections per second"',
        http2_edge.run,
    ),
)
BY_NAME = {lab.name: lab for lab in LABS}
