"""Build the Grafana dashboards of gateway-lab (dashboards/*.json) from one description.

The JSON files are what Grafana provisions; this script and its package (dashboards_builder/:
the building blocks, the shared selectors, one module per dashboard) are their source, so every
panel and every query gets the same datasource, layout rules and units. After editing them:

    .venv/bin/python monitoring/grafana/build_dashboards.py          # rewrite dashboards/*.json
    .venv/bin/python monitoring/grafana/build_dashboards.py --check  # exit 1 if they are stale

tests/static/test_dashboards.py runs the check, so the JSON and the builder never drift apart.
Every query is evaluated against a real Prometheus by tests/integration/test_dashboard_queries.py;
the panels that can only have data in Docker mode (cAdvisor) are named in DOCKER_ONLY_PANELS
(dashboards_builder/queries.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DASHBOARDS_DIR = HERE / "dashboards"

# Run as a script, only this folder is on the path: make the repository root importable, so the
# package is found under one name whether this file is run or imported.
_REPO_ROOT = str(HERE.parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from monitoring.grafana.dashboards_builder import edge_nginx, load_test, wsgi_vs_asgi  # noqa: E402
from monitoring.grafana.dashboards_builder.queries import DOCKER_ONLY_PANELS  # noqa: E402, F401

DASHBOARDS = {
    "wsgi-vs-asgi.json": wsgi_vs_asgi.build,
    "edge-nginx.json": edge_nginx.build,
    "load-test.json": load_test.build,
}


def render(build) -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a JSON file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = DASHBOARDS_DIR / name
        text = render(build)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
    if stale:
        print(
            f"stale dashboards: {', '.join(stale)}; run {Path(__file__).name} to rebuild",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
