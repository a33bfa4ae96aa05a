"""A real headless Chromium (Debian's), driven by Playwright, for the pages people look at."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from playwright.sync_api import Browser, Page, sync_playwright

# Without the background-networking switches Chromium keeps calling home, which a closed
# network refuses; --no-sandbox because the tests may run as root.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise RuntimeError(
            "Chromium is not installed: run `make setup` (Debian: apt-get install chromium)"
        )
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageProblems:
    """Everything a page did wrong while loading: console errors, script errors, failed fetches."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requested_urls: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on(
            "console",
            lambda message: message.type == "error" and self.console_errors.append(message.text),
        )
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("requestfailed", lambda request: self.failed_requests.append(request.url))
        page.on("request", lambda request: self.requested_urls.append(request.url))

    def all(self) -> list[str]:
        return [*self.console_errors, *self.page_errors, *self.failed_requests]


BROKEN_IMAGES_JS = """
() => Array.from(document.images)
  .filter(image => !image.complete || image.naturalWidth === 0)
  .map(image => image.alt || image.src.slice(0, 60))
"""
