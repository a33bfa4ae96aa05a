"""Bench options: profiles, command line and environment variables (pure, no Locust import).

Every option has a flag and an environment variable; the flag wins. Invalid input raises
:class:`UsageError`, which the entry point turns into a message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loadtests.settings import BOUNDS, SCENARIOS, TARGETS, ScenarioSettings, applicable


class UsageError(Exception):
    """Bad bench input: reported on stderr, exit code 2."""


@dataclass(frozen=True)
class Profile:
    name: str
    scenarios: tuple[str, ...]
    users: dict[str, tuple[int, ...]]
    warmup_s: float
    measure_s: float
    description: str


#: Default: 22 steps of 3 s warm-up + 10 s measurement, about 5 minutes with the pauses.
#: Quick: 9 steps of 2 + 5 s, about 75 s (the integration test's run).
PROFILES = {
    "default": Profile(
        name="default",
        scenarios=("io", "cpu", "hello", "stream", "ws_echo"),
        users={
            "io": (10, 25, 50, 100),
            "cpu": (2, 8),
            "hello": (10, 50),
            "stream": (5, 20),
            "ws_echo": (10, 50),
            "ws_chat": (10, 50),
        },
        warmup_s=3.0,
        measure_s=10.0,
        description="io at 10/25/50/100 users, cpu, hello, stream, ws_echo; about 5 minutes",
    ),
    "quick": Profile(
        name="quick",
        scenarios=("io", "hello", "stream", "ws_echo"),
        users={
            "io": (10, 40),
            "cpu": (4,),
            "hello": (10,),
            "stream": (10,),
            "ws_echo": (10,),
            "ws_chat": (10,),
        },
        warmup_s=2.0,
        measure_s=5.0,
        description="io at 10/40 users, hello, stream, ws_echo; about 75 seconds",
    ),
}

#: The scenarios' defaults (one copy: the fields of ScenarioSettings).
DEFAULTS = ScenarioSettings()

#: (flag, environment variable, help) - the single source for --help, docs and `make help`.
OPTION_HELP = [
    (
        "--url",
        "BENCH_URL",
        "public URL of the stack (nginx) [the running stack's: `python -m stackctl env`]",
    ),
    (
        "--prometheus-url",
        "BENCH_PROMETHEUS_URL",
        "Prometheus for the client/server cross-check; 'none' skips it [the running stack's]",
    ),
    ("--profile", "BENCH_PROFILE", "default (~5 min) or quick (~75 s) [default]"),
    ("--scenarios", "BENCH_SCENARIOS", f"comma list of {', '.join(SCENARIOS)} [profile's]"),
    ("--targets", "BENCH_TARGETS", "comma list of wsgi, asgi [both]"),
    (
        "--users",
        "BENCH_USERS",
        "user levels: '10,50' for every scenario or 'io=10,25;hello=50' [profile's]",
    ),
    ("--warmup", "BENCH_WARMUP", "seconds of warm-up per step, excluded from the figures"),
    ("--duration", "BENCH_DURATION", "seconds measured per step"),
    ("--io-ms", "BENCH_IO_MS", f"io scenario: /io?ms= wait [{DEFAULTS.io_ms}]"),
    ("--cpu-n", "BENCH_CPU_N", f"cpu scenario: /cpu?n= work size [{DEFAULTS.cpu_n}]"),
    ("--out", "BENCH_OUT", "reports folder; the run goes to <out>/<timestamp>/ [reports]"),
    (
        "--direct",
        "BENCH_DIRECT",
        "bypass nginx: 'wsgi=http://127.0.0.1:8001,asgi=http://127.0.0.1:8002' [off]",
    ),
]


@dataclass
class BenchOptions:
    url: str
    prometheus_url: str | None
    profile: str
    scenarios: tuple[str, ...]
    targets: tuple[str, ...]
    users: dict[str, tuple[int, ...]]
    warmup_s: float
    measure_s: float
    io_ms: int
    cpu_n: int
    out: str
    direct: dict[str, str] = field(default_factory=dict)

    def host(self, target: str) -> str:
        """Base URL Locust targets: nginx, or the service itself with --direct."""
        return self.direct.get(target, self.url)

    def healthz_url(self, target: str) -> str:
        if target in self.direct:
            return self.direct[target] + "/healthz"
        return f"{self.url}/{target}/healthz"

    def steps(self) -> list[tuple[str, str, int]]:
        """(scenario, target, users) in run order, applicable ones only.

        Order: for each scenario, the targets alternate (wsgi block, then asgi block), so each
        service is idle while the other one is loaded; the cross-check needs those pauses.
        """
        out = []
        for scenario in self.scenarios:
            for target in self.targets:
                if applicable(scenario, target):
                    out.extend((scenario, target, n) for n in self.users[scenario])
        return out

    def not_applicable(self) -> list[tuple[str, str]]:
        return [(s, t) for s in self.scenarios for t in self.targets if not applicable(s, t)]

    def scenario_settings(self, target: str) -> ScenarioSettings:
        return ScenarioSettings(
            target=target,
            io_ms=self.io_ms,
            cpu_n=self.cpu_n,
            path_prefix="" if target in self.direct else None,
        )

    def estimated_seconds(self, pause_s: float = 1.0) -> float:
        steps = self.steps()
        blocks = {(s, t) for s, t, _ in steps}
        return len(steps) * (self.warmup_s + self.measure_s) + len(blocks) * pause_s


def parse_direct(text: str) -> dict[str, str]:
    out = {}
    for part in _split(text):
        name, sep, url = part.partition("=")
        if not sep or name.strip() not in TARGETS:
            raise UsageError(
                f"--direct: expected TARGET=URL,... with TARGET wsgi or asgi, got {part!r}"
            )
        out[name.strip()] = _url(url.strip(), f"--direct {name.strip()}")
    return out


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_levels(text: str, what: str) -> tuple[int, ...]:
    levels = []
    for part in _split(text):
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"{what}: user counts must be integers, got {part!r}") from None
        if not 1 <= value <= 2000:
            raise UsageError(f"{what}: user counts must be between 1 and 2000, got {value}")
        levels.append(value)
    if not levels:
        raise UsageError(f"{what}: no user counts given")
    if len(set(levels)) != len(levels):
        raise UsageError(f"{what}: user counts repeat: {text!r}")
    return tuple(sorted(levels))


def parse_users(
    text: str, scenarios: tuple[str, ...], base: dict[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """``"10,50"`` (every scenario) or ``"io=10,25;hello=50"`` (named ones; others keep base)."""
    users = dict(base)
    text = text.strip()
    if "=" not in text:
        levels = parse_levels(text, "--users")
        return {s: levels for s in users} | {s: levels for s in scenarios}
    for chunk in text.split(";"):
        if not chunk.strip():
            continue
        name, sep, levels = chunk.partition("=")
        name = name.strip()
        if not sep or name not in SCENARIOS:
            raise UsageError(
                f"--users: expected SCENARIO=N,N;... with SCENARIO one of {', '.join(SCENARIOS)}, "
                f"got {chunk.strip()!r}"
            )
        users[name] = parse_levels(levels, f"--users {name}")
    return users


def parse_names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = _split(text)
    if not names:
        raise UsageError(f"{what}: nothing given")
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise UsageError(
            f"{what}: unknown {', '.join(repr(u) for u in unknown)} "
            f"(expected one of {', '.join(allowed)})"
        )
    return tuple(dict.fromkeys(names))


def _seconds(text: str, what: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: expected seconds, got {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{what}: must be between {low:g} and {high:g} seconds, got {value:g}")
    return value


def _int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{what}: expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{what}: must be between {low} and {high}, got {value}")
    return value


def _url(text: str, what: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{what}: expected an http:// URL, got {text!r}")
    return text.rstrip("/")


def _stack_addresses(environ: dict[str, str]) -> dict[str, str]:
    """The running stack's addresses (profile STACK_PROFILE), from the stack controller."""
    from stackctl.addresses import running_stack_env
    from stackctl.settings import SettingsError, load_settings

    try:
        return running_stack_env(load_settings(environ.get("STACK_PROFILE") or "default", environ))
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 itself; keep one error path
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m loadtests.bench",
        description="WSGI-vs-ASGI load comparison through nginx; writes reports/<timestamp>/.",
        epilog="Each option can also be set by the environment variable in its help; flags win.",
    )
    for flag, env, text in OPTION_HELP:
        parser.add_argument(flag, default=None, help=f"{text} (env {env})")
    return parser


def parse(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> BenchOptions:
    environ = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(argv)
    raw = {}
    for flag, env, _ in OPTION_HELP:
        dest = flag.lstrip("-").replace("-", "_")
        value = getattr(args, dest)
        if value is None:
            value = environ.get(env) or None
        raw[dest] = value

    profile_name = (raw["profile"] or "default").strip()
    if profile_name not in PROFILES:
        raise UsageError(
            f"--profile: unknown {profile_name!r} (expected one of {', '.join(PROFILES)})"
        )
    profile = PROFILES[profile_name]

    scenarios = (
        parse_names(raw["scenarios"], SCENARIOS, "--scenarios")
        if raw["scenarios"]
        else profile.scenarios
    )
    targets = parse_names(raw["targets"], TARGETS, "--targets") if raw["targets"] else TARGETS
    users = parse_users(raw["users"], scenarios, profile.users) if raw["users"] else profile.users

    stack = _stack_addresses(environ) if not (raw["url"] and raw["prometheus_url"]) else {}
    prom = raw["prometheus_url"] or stack["PROMETHEUS_URL"]
    prometheus_url = (
        None if prom.strip().lower() in ("none", "off", "-") else _url(prom, "--prometheus-url")
    )

    options = BenchOptions(
        url=_url(raw["url"] or stack["PUBLIC_URL"], "--url"),
        prometheus_url=prometheus_url,
        profile=profile_name,
        scenarios=scenarios,
        targets=targets,
        users={s: users[s] for s in scenarios},
        warmup_s=_seconds(raw["warmup"], "--warmup", 0, 600) if raw["warmup"] else profile.warmup_s,
        measure_s=_seconds(raw["duration"], "--duration", 1, 3600)
        if raw["duration"]
        else profile.measure_s,
        io_ms=_int(raw["io_ms"], "--io-ms", *BOUNDS["io_ms"]) if raw["io_ms"] else DEFAULTS.io_ms,
        cpu_n=_int(raw["cpu_n"], "--cpu-n", *BOUNDS["cpu_n"]) if raw["cpu_n"] else DEFAULTS.cpu_n,
        out=raw["out"] or "reports",
        direct=parse_direct(raw["direct"]) if raw["direct"] else {},
    )
    if not options.steps():
        raise UsageError(
            "nothing to run: every selected scenario is not applicable to the selected targets "
            "(WebSocket scenarios exist on asgi only)"
        )
    try:
        for target in targets:
            options.scenario_settings(target)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return options
