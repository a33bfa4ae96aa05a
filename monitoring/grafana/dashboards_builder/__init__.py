"""The pieces monitoring/grafana/build_dashboards.py builds the dashboards from.

``panels``: Grafana's building blocks (targets, panels, rows, layout, the dashboard frame) with
the project's datasource and defaults; ``queries``: what several dashboards select on, and
which panels have data in Docker mode only; one module per dashboard.
"""
