"""Render ``${NAME}`` placeholders in config templates from the environment.

The same renderer serves both run modes, so Docker and native mode read one config source.
Only upper-case ``${NAME}`` placeholders are replaced; everything else (nginx's ``$host``,
Prometheus's ``$1``) is left alone. A placeholder with no value is an error, never an empty string.

Usage: python -m stackctl.render [--container-limits] TEMPLATE OUTPUT [TEMPLATE OUTPUT ...]

--container-limits (Docker mode) adds the connection limits that stackctl.capacity derives from
CONTAINER_NOFILE, as native mode adds those derived from the machine's open-file limit, and the
routes and targets of the server variants selected by VARIANTS (stackctl.routes).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class MissingVariablesError(ValueError):
    def __init__(self, template: str, names: list[str]) -> None:
        self.names = names
        super().__init__(
            f"{template}: no value for {', '.join(names)} (set them in the environment or .env)"
        )


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render_text(text: str, values: Mapping[str, str], *, source: str = "<template>") -> str:
    missing = sorted(name for name in placeholders(text) if name not in values)
    if missing:
        raise MissingVariablesError(source, missing)
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], text)


def render_file(template: Path, output: Path, values: Mapping[str, str]) -> None:
    rendered = render_text(template.read_text(), values, source=str(template))
    output.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a reader never sees half a config.
    partial = output.with_name(output.name + ".partial")
    partial.write_text(rendered)
    partial.replace(output)


def static_discovery(address: str) -> str:
    """One Prometheus job's target list as a single YAML line (native mode: one address)."""
    return f'static_configs: [{{targets: ["{address}"]}}]'


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    values: dict[str, str] = dict(os.environ)
    if args[:1] == ["--container-limits"]:
        from gateway_common.settings import ConfigError
        from stackctl.capacity import CapacityError, container_limits
        from stackctl.routes import docker_values

        args = args[1:]
        try:
            values |= container_limits(os.environ).nginx_values()
            values |= docker_values(os.environ)
        except (CapacityError, ConfigError) as error:
            print(f"render: {error}", file=sys.stderr)
            return 1
    if not args or len(args) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    pairs = list(zip(args[::2], args[1::2], strict=True))
    try:
        for template, output in pairs:
            render_file(Path(template), Path(output), values)
            print(f"rendered {template} -> {output}")
    except (MissingVariablesError, OSError) as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
