"""The live lab on the landing page, in a real Chromium, against the native test stack.

What the page draws is read back from the DOM (each race bar carries its times in data
attributes), and its screenshots at a phone's and a desktop's width are kept under
.run/test/screenshots.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser import PageProblems, chromium
from tests.conftest import TEST_VARIANTS, StackHandle

pytestmark = pytest.mark.integration

LAB_SERIES = {
    "service:http_requests_in_progress:sum",
    "service:http_requests:rate1m",
    "service:server_worker_capacity:sum",
}
RACE_N, RACE_MS = 6, 600
STALL_MS, STALL_REQUESTS = 1500, 4
WIDTHS = {"phone": (375, 812), "desktop": (1280, 900)}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


@pytest.fixture(scope="module")
def screenshots_dir(stack: StackHandle) -> Path:
    directory = stack.state_dir / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    print(f"lab page screenshots: {directory}")
    return directory


def open_lab(browser: Browser, stack: StackHandle, room: str, width: int = 1280, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems = PageProblems()
    problems.watch(page)
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(f"{stack.public_url}/?room={room}", wait_until="load")
    page.wait_for_selector("body[data-ready='true']", timeout=20_000)
    page.wait_for_selector(".member[data-member='1'][data-state='open']", timeout=20_000)
    return context, page, problems, sockets


def new_room() -> str:
    return f"lab-{uuid.uuid4().hex[:12]}"


def waves(ends_ms: list[float], wait_ms: int) -> list[int]:
    """Completion times grouped as the page groups them: a gap over half a wait starts a wave."""
    sizes: list[int] = []
    previous = -math.inf
    for end in sorted(ends_ms):
        if end - previous > wait_ms / 2:
            sizes.append(0)
        sizes[-1] += 1
        previous = end
    return sizes


def run_race(page: Page, n: int, ms: int) -> dict[str, list[float]]:
    page.fill("#race-n", str(n))
    page.fill("#race-ms", str(ms))
    page.click("#race-start")
    page.wait_for_selector("#race:is([data-state='done'], [data-state='failed'])", timeout=60_000)
    assert page.get_attribute("#race", "data-state") == "done", page.inner_text("#race-error")
    ends: dict[str, list[float]] = {}
    for service in ("wsgi", "asgi"):
        ends[service] = page.eval_on_selector_all(
            f"#race-chart rect.bar[data-service='{service}']",
            "bars => bars.map(bar => Number(bar.dataset.endMs))",
        )
    return ends


def run_stall(page: Page, variant: str, ms: int, requests: int) -> dict[str, str]:
    run = int(page.get_attribute("#stall-result", "data-run") or 0)
    page.select_option("#stall-variant", variant)
    page.fill("#stall-ms", str(ms))
    page.fill("#stall-count", str(requests))
    page.click("#stall-start")
    page.wait_for_selector(f"#stall-result[data-run='{run + 1}']", timeout=60_000)
    return page.eval_on_selector("#stall-result", "result => ({...result.dataset})")


# ---- the fixed-query path -------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(stack: StackHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.public_url, timeout=30) as http:
        yield http


def lab_series(body: dict) -> set[tuple[str, str]]:
    return {(r["metric"]["__name__"], r["metric"]["service"]) for r in body["data"]["result"]}


def expected_series() -> set[tuple[str, str]]:
    """Each series for every running variant (their health probes already made requests)."""
    return {(name, variant.name) for name in LAB_SERIES for variant in TEST_VARIANTS}


def wait_for_lab_series(stack: StackHandle) -> None:
    """The recording rules need an evaluation or two after the stack starts."""
    names = "|".join(sorted(LAB_SERIES))
    count = len(expected_series())
    stack.wait_for(f'{{__name__=~"{names}"}}', lambda result: len(result) == count)


def test_lab_metrics_answers_the_fixed_query_for_every_variant(client, stack: StackHandle):
    wait_for_lab_series(stack)
    response = client.get("/lab/metrics.json")
    assert response.status_code == 200
    assert lab_series(response.json()) == expected_series()


@pytest.mark.parametrize(
    "request_args",
    [
        {"method": "GET", "url": "/lab/metrics.json", "params": {"query": "up"}},
        {"method": "GET", "url": "/lab/metrics.json?query=up&query=up"},
        {"method": "POST", "url": "/lab/metrics.json", "data": {"query": "up"}},
        {"method": "POST", "url": "/lab/metrics.json?query=up", "data": {"query": "up"}},
    ],
    ids=["get-query", "get-repeated-query", "post-form", "post-form-and-query"],
)
def test_lab_metrics_ignores_any_query_the_client_sends(client, stack: StackHandle, request_args):
    wait_for_lab_series(stack)
    response = client.request(**request_args)
    assert response.status_code == 200
    assert lab_series(response.json()) == expected_series()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/query?query=up",
        "/api/v1/admin/tsdb/snapshot",
        "/lab/api/v1/query?query=up",
        "/lab/metrics.json/../api/v1/query?query=up",
        "/lab/metrics.json/x",
        "/lab/",
        "/lab/metrics",
        "/-/ready",
        "/federate",
        "/metrics",
    ],
)
def test_no_other_prometheus_path_is_reachable_on_the_public_port(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert '"status":"success"' not in response.text.replace(" ", "")


# ---- the page in Chromium -------------------------------------------------------------------


def test_lab_page_loads_with_no_errors_and_talks_to_this_host_only(browser, stack: StackHandle):
    context, page, problems, sockets = open_lab(browser, stack, new_room())
    try:
        page.wait_for_selector("#numbers-status[data-state='ok']", timeout=20_000)
        for interface in ("wsgi", "asgi"):
            capacity = page.get_attribute(
                f"#numbers-table tr[data-interface='{interface}'] .capacity", "data-value"
            )
            assert capacity is not None and float(capacity) >= 1
        assert problems.all() == [], problems
        assert problems.requested_urls and sockets
        assert all(url.startswith(stack.public_url) for url in problems.requested_urls)
        assert all(url.startswith(stack.ws_url) for url in sockets)
    finally:
        context.close()


def test_lab_page_lists_every_running_variant_with_its_capacity(browser, stack: StackHandle):
    context, page, problems, _sockets = open_lab(browser, stack, new_room())
    try:
        page.wait_for_selector("#variants-status[data-state='ok']", timeout=20_000)
        shown = page.eval_on_selector_all(
            "#variants-table tbody tr",
            "rows => rows.map(r => [r.dataset.variant, r.querySelector('.capacity').textContent])",
        )
        assert shown == [
            [v.name, "unbounded" if v.capacity is None else str(v.capacity)] for v in TEST_VARIANTS
        ]
        assert problems.all() == [], problems
    finally:
        context.close()


def test_chat_broadcasts_between_two_browser_contexts(browser, stack: StackHandle):
    room = new_room()
    first = open_lab(browser, stack, room)
    second = open_lab(browser, stack, room)
    try:
        page_a, page_b = first[1], second[1]
        sender = page_a.get_attribute(".member[data-member='1']", "data-id")
        page_a.fill(".member[data-member='1'] .send input", "hello from context A")
        page_a.click(".member[data-member='1'] .send button")
        received = page_b.wait_for_selector(
            ".member[data-member='1'] li[data-text='hello from context A']", timeout=10_000
        )
        assert received.get_attribute("data-from") == sender
        # "Join as another user": a second member on the same page gets it too.
        page_b.click("#chat-join")
        page_b.wait_for_selector(".member[data-member='2'][data-state='open']", timeout=10_000)
        page_b.fill(".member[data-member='2'] .send input", "hello from user 2")
        page_b.click(".member[data-member='2'] .send button")
        for page in (page_a, page_b):
            page.wait_for_selector(
                ".member[data-member='1'] li[data-text='hello from user 2']", timeout=10_000
            )
        assert first[2].all() == [] and second[2].all() == []
    finally:
        first[0].close()
        second[0].close()


def test_race_draws_wsgi_in_waves_of_its_capacity_and_asgi_together(
    browser, stack: StackHandle, client
):
    health = client.get("/wsgi/healthz").json()
    capacity = health["workers"] * health["threads"]
    assert capacity < RACE_N, "the race needs more requests than WSGI's capacity"
    context, page, problems, _ = open_lab(browser, stack, new_room())
    try:
        ends = run_race(page, RACE_N, RACE_MS)
        assert len(ends["wsgi"]) == len(ends["asgi"]) == RACE_N
        rounds = math.ceil(RACE_N / capacity)
        full = [capacity] * (RACE_N // capacity)
        expected_wsgi = full + ([RACE_N % capacity] if RACE_N % capacity else [])
        assert waves(ends["wsgi"], RACE_MS) == expected_wsgi, ends["wsgi"]
        assert waves(ends["asgi"], RACE_MS) == [RACE_N], ends["asgi"]
        # The page states the same waves and the Little's-law prediction beside them.
        shown = page.eval_on_selector_all(
            "#race-result p",
            "lines => lines.map(l => [l.dataset.service, l.dataset.waves, l.dataset.predictedMs])",
        )
        assert shown == [
            ["wsgi", ",".join(map(str, expected_wsgi)), str(rounds * RACE_MS)],
            ["asgi", str(RACE_N), str(RACE_MS)],
        ]
        assert problems.all() == [], problems
    finally:
        context.close()


def test_stall_demo_spikes_with_blocking_and_not_with_the_threadpool(browser, stack: StackHandle):
    context, page, problems, _ = open_lab(browser, stack, new_room())
    try:
        # Every echo socket is open and answering before the measurement starts.
        page.wait_for_function(
            "() => document.querySelectorAll('#stall-chart circle').length >= 8", timeout=10_000
        )
        blocked = run_stall(page, "blocking", STALL_MS, STALL_REQUESTS)
        # A stalled loop answers no ping until its sleep ends: some echo waited over half of it.
        assert float(blocked["maxRttMs"]) > STALL_MS / 2, blocked
        threaded = run_stall(page, "threadpool", STALL_MS, STALL_REQUESTS)
        assert int(threaded["samples"]) > 0
        assert float(threaded["maxRttMs"]) < STALL_MS / 2, threaded
        assert problems.all() == [], problems
    finally:
        context.close()


@pytest.mark.parametrize("width_name", WIDTHS)
def test_lab_page_fits_the_width_and_is_saved_as_a_screenshot(
    browser, stack: StackHandle, screenshots_dir: Path, width_name: str
):
    width, height = WIDTHS[width_name]
    context, page, problems, _ = open_lab(browser, stack, new_room(), width, height)
    try:
        page.click("#chat-join")
        page.wait_for_selector(".member[data-member='2'][data-state='open']", timeout=10_000)
        page.fill(".member[data-member='1'] .send input", "hello from the first member")
        page.click(".member[data-member='1'] .send button")
        page.wait_for_selector(".member[data-member='2'] li", timeout=10_000)
        run_race(page, RACE_N, RACE_MS)
        run_stall(page, "blocking", STALL_MS, STALL_REQUESTS)
        page.wait_for_selector("#numbers-status[data-state='ok']", timeout=20_000)
        # Nothing sticks out sideways: the page scrolls only down.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        path = screenshots_dir / f"lab-{width_name}-{width}px.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        assert problems.all() == [], problems
    finally:
        context.close()
