"""Minimal Prometheus HTTP API client (standard library only) for the bench's cross-check."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request


class PrometheusError(Exception):
    pass


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict | None = None) -> dict:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        try:
            with urllib.request.urlopen(self.url + path + query, timeout=self.timeout) as resp:
                doc = json.load(resp)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PrometheusError(f"{self.url}{path}: {exc}") from exc
        if doc.get("status") != "success":
            raise PrometheusError(f"{self.url}{path}: {doc.get('error', doc)}")
        return doc["data"]

    def ready(self) -> None:
        self._get("/api/v1/status/buildinfo")

    def scrape_interval_s(self, default: float = 15.0) -> float:
        """The global scrape_interval of the running configuration."""
        try:
            text = self._get("/api/v1/status/config").get("yaml", "")
        except PrometheusError:
            return default
        match = re.search(r"^\s+scrape_interval:\s*(\d+(?:\.\d+)?)(ms|s|m)\b", text, re.M)
        if not match:
            return default
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value

    def query(self, expr: str, at: float | None = None) -> dict:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params)

    def raw_samples(self, selector: str, start: float, end: float) -> list[dict]:
        """Raw scrape samples of every series matching ``selector`` in [start, end].

        Returns ``[{"labels": {...}, "samples": [(t, v), ...]}]`` (a range-vector selector
        evaluated at ``end``: real scrape timestamps, no interpolation).
        """
        window = max(1, int(end - start) + 1)
        data = self.query(f"{selector}[{window}s]", at=end)
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"expected a matrix for {selector}, got {data.get('resultType')}")
        return [
            {
                "labels": item["metric"],
                "samples": [(float(t), float(v)) for t, v in item["values"]],
            }
            for item in data["result"]
        ]

    def scrape_times(self, start: float, end: float) -> dict[tuple[str, str], list[float]]:
        """(job, instance) -> the times each target was scraped in [start, end] (``up``'s
        samples: every scrape writes one, whatever series the target exposed then)."""
        return {
            (d["labels"].get("job", ""), d["labels"].get("instance", "")): [
                t for t, _ in d["samples"]
            ]
            for d in self.raw_samples("up", start, end)
        }
