"""The labs, in the order the material makes its claims."""

from __future__ import annotations

from loadtests.lab import race
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
)
BY_NAME = {lab.name: lab for lab in LABS}
