"""Entry point: ``python -m loadtests.lab [NAME] [--n N] [--ms MS]`` from the repository root."""

from loadtests.lab.cli import main

raise SystemExit(main())
