"""Entry point: ``python -m loadtests.bench [options]`` from the repository root."""

from loadtests.bench.cli import run

run()
