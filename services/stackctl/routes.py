"""nginx routes, Prometheus targets and `/variants.json` for the selected server variants.

The registry (gateway_common.variants) says what each variant is; this module turns the
selection (`VARIANTS`) into the template values both run modes render. The default services'
routes (`/wsgi/`, `/asgi/`) are written by hand in the nginx template, for a newcomer to read;
only the extra variants are generated here, all alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from gateway_common import variants
from gateway_common.variants import Variant

# Seconds an idle WebSocket may live through nginx; the servers ping every 20 s.
WS_IDLE_TIMEOUT_S = 3600
# An SSE stream lasts at most 60 s (the contract's bound); a margin on top.
STREAM_READ_TIMEOUT_S = 120

Backend = Callable[[Variant], str]


def native_upstream_name(variant: Variant) -> str:
    return "variant_" + variant.name.replace("-", "_")


def docker_backend(variant: Variant) -> str:
    return f"{variant.name}:{variants.CONTAINER_APP_PORT}"


def extra(selection: Iterable[Variant]) -> list[Variant]:
    return [variant for variant in selection if not variant.default]


def nginx_upstreams(selection: Iterable[Variant], address: Callable[[Variant], str]) -> str:
    """Native mode: one keep-alive upstream group per extra variant (like the default two)."""
    blocks = []
    for variant in extra(selection):
        server = address(variant)
        blocks.append(
            f"    upstream {native_upstream_name(variant)} {{\n"
            f"        server {server} max_fails=0;\n"
            f"        server {server} max_fails=0 backup;\n"
            f"        server {server} max_fails=0 backup;\n"
            "        keepalive 16;\n"
            "        keepalive_timeout 60s;\n"
            "        keepalive_requests 10000;\n"
            "    }\n"
        )
    return "\n".join(blocks).rstrip("\n") or "    # no extra variants selected (VARIANTS)"


def nginx_forwarded_prefixes(selection: Iterable[Variant]) -> str:
    lines = [f"        ~^{v.prefix}/    {v.prefix};" for v in extra(selection)]
    return "\n".join(lines) or "        # no extra variants selected"


def _location(variant: Variant, backend: str) -> str:
    prefix = variant.prefix
    rewrite = f'rewrite "(?s)^{prefix}(/.*)$" $1 break;'
    target = f"set $variant_backend {backend};"
    websockets = ""
    if variant.websockets:
        websockets = (
            f"            location {prefix}/ws/ {{\n"
            "                if ($edge_over_capacity) {\n"
            "                    rewrite ^ /_errors/capacity.json last;\n"
            "                }\n"
            f"                {target}\n"
            f"                {rewrite}\n"
            "                proxy_pass http://$variant_backend;\n"
            f"                proxy_read_timeout {WS_IDLE_TIMEOUT_S}s;\n"
            f"                proxy_send_timeout {WS_IDLE_TIMEOUT_S}s;\n"
            "            }\n"
        )
    return (
        f"        # {variant.name}: {variant.framework} on {variant.server} "
        f"({variant.worker_class}), {variant.interface}\n"
        f"        location {prefix}/ {{\n"
        f"            {target}\n"
        f"            {rewrite}\n"
        "            proxy_pass http://$variant_backend;\n"
        f"            location = {prefix}/stream {{\n"
        f"                {target}\n"
        f"                {rewrite}\n"
        "                proxy_pass http://$variant_backend;\n"
        "                proxy_buffering off;\n"
        f"                proxy_read_timeout {STREAM_READ_TIMEOUT_S}s;\n"
        "            }\n"
        f"{websockets}"
        "        }\n"
        f"        location = {prefix} {{ return 308 {prefix}/healthz; }}\n"
    )


def nginx_locations(selection: Iterable[Variant], backend: Backend) -> str:
    blocks = [_location(variant, backend(variant)) for variant in extra(selection)]
    return "\n".join(blocks).rstrip("\n") or "        # no extra variants selected (VARIANTS)"


def variants_document(selection: Iterable[Variant], environ: Mapping[str, str]) -> str:
    """`GET /variants.json`: what runs behind this nginx, one compact line of JSON."""
    running = [variants.with_default_overrides(v, environ).summary() for v in selection]
    text = json.dumps({"variants": running}, separators=(",", ":"))
    # Inlined in an nginx `return` between single quotes: none may occur inside.
    assert "'" not in text and "\\" not in text
    return text


def prometheus_discovery(targets: list[str]) -> str:
    """The `variants` job's target list, one YAML line (static addresses)."""
    quoted = ", ".join(f'"{target}"' for target in targets)
    return f"static_configs: [{{targets: [{quoted}]}}]"


def docker_prometheus_discovery(selection: Iterable[Variant]) -> str:
    names = ", ".join(variant.name for variant in extra(selection))
    if not names:
        return "static_configs: [{targets: []}]"
    return (
        f"dns_sd_configs: [{{names: [{names}], type: A, "
        f"port: {variants.CONTAINER_METRICS_PORT}, refresh_interval: 5s}}]"
    )


def template_values(
    selection: tuple[Variant, ...],
    environ: Mapping[str, str],
    *,
    backend: Backend,
    upstreams: str,
    metrics_discovery: str,
) -> dict[str, str]:
    return {
        "VARIANT_UPSTREAMS": upstreams,
        "VARIANT_FORWARDED_PREFIXES": nginx_forwarded_prefixes(selection),
        "VARIANT_LOCATIONS": nginx_locations(selection, backend),
        "VARIANTS_JSON": variants_document(selection, environ),
        "VARIANT_METRICS_DISCOVERY": metrics_discovery,
    }


def docker_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Docker mode (the compose `config` service): services by name, resolved at run time."""
    selection = variants.selected(environ)
    return template_values(
        selection,
        environ,
        backend=docker_backend,
        upstreams="    # Docker mode: variants are reached by service name (see the resolver)",
        metrics_discovery=docker_prometheus_discovery(selection),
    )
