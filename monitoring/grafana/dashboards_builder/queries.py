"""What several dashboards select on, and which panels have data in Docker mode only."""

from __future__ import annotations

# Selector of the template variable of the WSGI-vs-ASGI dashboard. There is no `instance`
# variable: the service: series sum every replica, and the per-replica panels split by
# `instance` themselves.
SEL = 'service=~"$service"'

LOCUST_ONLY = "Has data only while a load test runs (Locust registers itself with Prometheus)."

# Panels whose series exist only in Docker mode (cAdvisor runs only there). The integration
# test checks that these, and only these, return nothing on the native stack.
DOCKER_ONLY_PANELS = {
    ("gateway-wsgi-vs-asgi", "Container CPU (Docker mode only, cAdvisor)"),
    ("gateway-wsgi-vs-asgi", "Container memory (Docker mode only, cAdvisor)"),
}
