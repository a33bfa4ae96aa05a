"""Reading a stack's Prometheus over its HTTP API, shared by the native and Docker handles."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable


class PrometheusQueries:
    """Mixed into a stack handle that has a `prometheus_url`."""

    prometheus_url: str
    # How long wait_for polls unless told; it only stops a broken stack from hanging a test.
    wait_timeout_s = 30.0

    def query(self, expr: str) -> list:
        """Instant query against the stack's Prometheus; returns the result vector."""
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(
        self, expr: str, ready: Callable[[list], bool], timeout_s: float | None = None
    ) -> list:
        """Poll `expr` until `ready(result)`."""
        timeout_s = self.wait_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        result: list = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if ready(result):
                return result
            time.sleep(1)
        raise AssertionError(f"{expr!r} not ready after {timeout_s} s; last result: {result}")
