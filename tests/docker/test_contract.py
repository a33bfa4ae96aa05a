"""The contract of docs/architecture.md, through the Docker stack's published port.

The HTTP, SSE and WebSocket checks are the native integration tests themselves, collected here
again with this folder's `stack` (the compose project): one contract, proven in both run modes,
on every server variant the stack runs (TEST_VARIANTS, all by default: one container each).
"""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
import yaml

from gateway_common.variants import CONTAINER_METRICS_PORT
from stackctl import docker, images
from stackctl.settings import REPO_ROOT
from tests.conftest import TEST_VARIANTS

# Imported test functions are collected here, against the Docker stack.
from tests.integration.test_lab_page import (  # noqa: F401
    test_lab_metrics_answers_the_fixed_query_for_every_variant,
    test_lab_metrics_ignores_any_query_the_client_sends,
    test_no_other_prometheus_path_is_reachable_on_the_public_port,
)

# Long polling; natively only, the others: they read Redis's subscriptions and the metrics port.
from tests.integration.test_long_poll_stack import (  # noqa: F401
    test_a_poll_times_out_with_204_through_nginx,
    test_a_wsgi_post_reaches_a_chat_socket_and_an_asgi_poll,
    test_every_variant_polls_and_publishes_in_the_shared_rooms,
)

# Natively only: the request-id test reads the services' log files, the per-variant metrics test
# their metrics ports (published nowhere in Docker mode: the Docker form is below).
from tests.integration.test_stack import (  # noqa: F401
    _counter,
    test_a_variant_prefix_without_slash_redirects_to_its_healthz,
    test_a_variant_without_websockets_refuses_the_handshake_with_a_json_error,
    test_bad_query_parameters_are_a_json_400,
    test_body_over_the_limit_is_refused_by_nginx_with_json_413,
    test_echo_accepts_a_valid_document_and_rejects_bad_ones,
    test_healthz_through_nginx_names_the_variant_as_registered,
    test_internal_endpoints_are_not_reachable_on_the_public_port,
    test_io_waits_and_reports_what_it_waited,
    test_landing_page_is_served_with_security_headers,
    test_sse_events_arrive_one_by_one_through_nginx,
    test_unknown_paths_and_methods_are_json_errors,
    test_variants_json_lists_every_running_variant_as_healthz_describes_it,
    test_websocket_chat_broadcasts_to_every_socket_in_the_room_across_workers,
    test_websocket_chat_refuses_a_bad_room_name,
    test_websocket_echo_through_nginx,
    test_websocket_message_over_the_limit_closes_with_1009,
)
from tests.integration.test_tls import (  # noqa: F401
    test_both_services_answer_over_http2,
    test_internal_endpoints_are_404_on_the_tls_port,
    test_sse_streams_over_http2,
    test_tls_port_offers_h2_and_http11_by_alpn,
    test_wss_echo_through_the_tls_port,
)

pytestmark = pytest.mark.docker

RULES_DIR = REPO_ROOT / "monitoring" / "prometheus" / "rules"


@pytest.fixture(scope="module")
def client(stack):
    with httpx.Client(base_url=stack.public_url, timeout=30) as http:
        yield http


def test_every_service_with_an_image_runs_and_only_unavailable_images_are_left_out(stack):
    unavailable = images.unavailable_services(stack.outcomes)
    unavailable_images = {o.image for o in stack.outcomes if o.source == "unavailable"}
    assert unavailable_images <= {
        f"{repository}:{ref.tag}"
        for repository in images.UNAVAILABLE
        for ref in map(images.ImageRef, images.required_images())
        if ref.repository == repository
    }
    running = {row["Service"]: row for row in stack.containers() if row["State"] == "running"}
    expected = set(stack.compose("config", "--services").split()) - set(unavailable) - {"config"}
    assert expected <= running.keys(), f"not running: {expected - running.keys()}"
    for name, row in running.items():
        assert row.get("Health") in ("", "healthy"), f"{name}: {row.get('Health')}"


EXTRA_VARIANTS = [variant for variant in TEST_VARIANTS if not variant.default]


def test_every_prometheus_target_is_up(stack):
    jobs = {"prometheus", "flask", "fastapi", "nginx", "node", "redis"}
    results = stack.wait_for(
        "up",
        lambda r: jobs <= {s["metric"]["job"] for s in r} and all(s["value"][1] == "1" for s in r),
    )
    assert all(series["value"][1] == "1" for series in results), results
    if EXTRA_VARIANTS:
        # One target per variant container, found by its service name (dns_sd).
        scraped = stack.wait_for(
            'up{job="variants"}',
            lambda r: len(r) == len(EXTRA_VARIANTS) and all(s["value"][1] == "1" for s in r),
        )
        assert len(scraped) == len(EXTRA_VARIANTS)


HELLO_COUNT = 'sum by (service) (http_requests_total{route="/hello", status="200"})'
READ_METRICS = (
    "import urllib.request; "
    f"print(urllib.request.urlopen('http://127.0.0.1:{CONTAINER_METRICS_PORT}/metrics').read().decode())"
)


def _own_metrics(stack, variant) -> str:
    """The variant container's metrics, read inside it (the port is published nowhere)."""
    text = stack.compose("exec", "-T", variant.name, "python", "-c", READ_METRICS)
    assert "http_requests_total" in text, f"{variant.name}: no metrics from its port"
    return text


def _hello_count(stack, variant) -> float:
    """/hello answered 200, as the variant's own metrics port counts it."""
    return _counter(
        _own_metrics(stack, variant), "http_requests_total", route="/hello", status="200"
    )


def test_every_request_to_a_variant_is_counted_under_its_own_name(stack, client):
    """The Docker form of the native test: the metrics port is read inside the container, then
    Prometheus must show the same totals under the variant's name."""
    calls = 12
    before = {variant.name: _hello_count(stack, variant) for variant in TEST_VARIANTS}
    paths = [f"{variant.prefix}/hello" for variant in TEST_VARIANTS for _ in range(calls)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda path: client.get(path).status_code, paths))
    assert statuses == [200] * len(paths)
    after = {variant.name: _hello_count(stack, variant) for variant in TEST_VARIANTS}
    assert {name: after[name] - before[name] for name in after} == dict.fromkeys(after, calls)

    def scraped(result: list) -> dict[str, float]:
        found = {s["metric"]["service"]: float(s["value"][1]) for s in result}
        return {name: found.get(name) for name in after}

    stack.wait_for(HELLO_COUNT, lambda r: scraped(r) == after)
    capacity = {
        s["metric"]["service"]: float(s["value"][1])
        for s in stack.query("sum by (service) (server_worker_capacity)")
    }
    for variant in TEST_VARIANTS:
        declared = variant.capacity or variant.workers
        own = _counter(_own_metrics(stack, variant), "server_worker_capacity")
        assert (own, capacity.get(variant.name)) == (declared, declared), variant.name


def test_recording_and_alert_rules_are_loaded(stack):
    expected = {
        group["name"]
        for path in RULES_DIR.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
    }
    with httpx.Client(timeout=10) as http:
        groups = http.get(f"{stack.prometheus_url}/api/v1/rules").json()["data"]["groups"]
    assert {group["name"] for group in groups} == expected
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])


def test_only_nginx_is_published_on_a_non_loopback_address(stack):
    published = stack.compose("ps", "--format", "{{.Service}} {{.Ports}}")
    for line in published.splitlines():
        service, _, ports = line.partition(" ")
        for binding in filter(None, (part.strip() for part in ports.split(","))):
            if "->" not in binding:
                continue  # exposed inside the network only
            host = binding.split("->")[0].rsplit(":", 1)[0]
            assert host in ("127.0.0.1", "[::1]"), f"{service} published on {binding}"


def test_locust_profile_runs_distributed_and_registers_with_prometheus(stack):
    """`--profile loadtest`: a master and two workers; the master announces itself to Prometheus."""
    services = ("locust-master", "locust-worker")
    profile = ("--profile", "loadtest")
    up = ("up", "--build", "--wait", "--detach", "--scale", "locust-worker=2")
    assert docker.compose(stack.settings, *profile, *up, *services) == 0
    try:
        stack.wait_for('up{job="locust"}', lambda r: bool(r) and r[0]["value"][1] == "1")
        ui = f"http://127.0.0.1:{stack.env['LOCUST_PORT']}"
        workers: list = []
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = httpx.get(f"{ui}/stats/requests", timeout=10).json().get("workers", [])
            time.sleep(1)
        assert len(workers) == 2, workers
    finally:
        docker.compose(stack.settings, *profile, "rm", "--stop", "--force", *services)
    # The master removes its file_sd entry when it stops: no "down" target is left behind.
    stack.wait_for('up{job="locust"}', lambda r: not r)
