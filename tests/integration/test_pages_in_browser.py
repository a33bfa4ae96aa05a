"""The landing page, opened in a real browser through nginx's public port."""

from __future__ import annotations

import json

import pytest

from tests.browser import PageProblems, chromium
from tests.conftest import StackHandle

pytestmark = pytest.mark.integration


def test_landing_page_renders_styled_with_no_errors_under_its_csp(stack: StackHandle):
    with chromium() as browser:
        page = browser.new_page()
        problems = PageProblems()
        problems.watch(page)
        response = page.goto(f"{stack.public_url}/", wait_until="load")
        assert response is not None and response.status == 200
        assert page.title() == "gateway-lab"
        # The stylesheet is allowed by the page's Content-Security-Policy and applied.
        header_background = page.eval_on_selector(
            "th", "cell => getComputedStyle(cell).backgroundColor"
        )
        assert header_background == "rgb(238, 242, 247)"
        assert problems.all() == [], problems
        assert all(url.startswith(stack.public_url) for url in problems.requested_urls)


@pytest.mark.parametrize(
    ("link", "interface"), [("/wsgi/healthz", "wsgi"), ("/asgi/healthz", "asgi")]
)
def test_landing_page_links_reach_both_services(stack: StackHandle, link, interface):
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{stack.public_url}/", wait_until="load")
        with page.expect_navigation():
            page.click(f"a[href='{link}']")
        assert json.loads(page.inner_text("body"))["interface"] == interface
