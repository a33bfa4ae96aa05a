"""Bench options: profiles, command line and environment variables (pure, no Locust import).

Every option has a flag and an environment variable; the flag wins. Invalid input raises
:class:`UsageError`, which the entry point turns into a message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loadtests.bench.results import CLOSED, MODELS, OPEN
from loadtests.settings import (
    BOUNDS,
    OPEN_RATE_MAX,
    OPEN_SCENARIOS,
    SCENARIOS,
    TARGETS,
    ScenarioSettings,
    applicable,
)
from stackctl.settings import SettingsError, load_settings


class UsageError(Exception):
    """Bad bench input: reported on stderr, exit code 2."""


@dataclass(frozen=True)
class Profile:
    name: str
    scenarios: tuple[str, ...]
    users: dict[str, tuple[int, ...]]
    #: Open model: offered requests/s per step (hello, io, cpu only).
    rates: dict[str, tuple[float, ...]]
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
        # io: 10/s is half of WSGI's 20/s capacity (2 workers / 100 ms), 30/s is above it.
        rates={"io": (10.0, 20.0, 30.0, 60.0), "hello": (50.0, 200.0), "cpu": (20.0, 60.0)},
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
        rates={"io": (10.0, 30.0), "hello": (100.0,), "cpu": (30.0,)},
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
    (
        "--model",
        "BENCH_MODEL",
        "closed (users that wait for each answer) or open (requests sent on a schedule at "
        "--rates, answered or not; hello, io, cpu) [closed]",
    ),
    (
        "--rates",
        "BENCH_RATES",
        "open model's offered requests/s: '10,30' for every scenario or 'io=10,30;hello=100' "
        "[profile's]",
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
    model: str = CLOSED
    rates: dict[str, tuple[float, ...]] = field(default_factory=dict)
    #: Where Locust's exporter listens, and the Prometheus file-discovery folder it registers in
    #: (the running stack's, so its load-test dashboard shows the bench).
    metrics_bind: str | None = None
    targets_dir: str | None = None

    def levels(self, scenario: str) -> tuple[float, ...]:
        """The steps of a scenario: user counts (closed model) or offered rates (open)."""
        return self.rates[scenario] if self.model == OPEN else self.users[scenario]

    def host(self, target: str) -> str:
        """Base URL Locust targets: nginx, or the service itself with --direct."""
        return self.direct.get(target, self.url)

    def healthz_url(self, target: str) -> str:
        if target in self.direct:
            return self.direct[target] + "/healthz"
        return f"{self.url}/{target}/healthz"

    def steps(self) -> list[tuple[str, str, float]]:
        """(scenario, target, users or rate) in run order, applicable ones only.

        Order: for each scenario, the targets alternate (wsgi block, then asgi block), so each
        service is idle while the other one is loaded; the cross-check needs those pauses.
        """
        out = []
        for scenario in self.scenarios:
            for target in self.targets:
                if applicable(scenario, target):
                    out.extend((scenario, target, n) for n in self.levels(scenario))
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


def parse_rate_levels(text: str, what: str) -> tuple[float, ...]:
    rates = []
    for part in _split(text):
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"{what}: rates must be numbers (requests/s), got {part!r}") from None
        if not 0 < value <= OPEN_RATE_MAX:
            raise UsageError(f"{what}: rates must be above 0 and at most {OPEN_RATE_MAX:g}/s")
        rates.append(value)
    if not rates:
        raise UsageError(f"{what}: no rates given")
    if len(set(rates)) != len(rates):
        raise UsageError(f"{what}: rates repeat: {text!r}")
    return tuple(sorted(rates))


def parse_rates(
    text: str, scenarios: tuple[str, ...], base: dict[str, tuple[float, ...]]
) -> dict[str, tuple[float, ...]]:
    """``"10,30"`` (every scenario) or ``"io=10,30;hello=100"`` (named ones; others keep base)."""
    rates = dict(base)
    if "=" not in text:
        levels = parse_rate_levels(text, "--rates")
        return rates | dict.fromkeys(scenarios, levels)
    for chunk in filter(str.strip, text.split(";")):
        name, sep, levels = (part.strip() for part in chunk.partition("="))
        if not sep or name not in OPEN_SCENARIOS:
            raise UsageError(
                f"--rates: expected SCENARIO=R,R;... with SCENARIO one of "
                f"{', '.join(OPEN_SCENARIOS)}, got {chunk.strip()!r}"
            )
        rates[name] = parse_rate_levels(levels, f"--rates {name}")
    return rates


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


def _raw(argv: list[str] | None, environ: dict[str, str]) -> dict[str, str | None]:
    """Each option's text: the flag, else its environment variable, else None."""
    args = build_parser().parse_args(argv)
    raw = {}
    for flag, env, _ in OPTION_HELP:
        dest = flag.lstrip("-").replace("-", "_")
        value = getattr(args, dest)
        raw[dest] = value if value is not None else environ.get(env) or None
    return raw


def _profile(raw: dict[str, str | None]) -> Profile:
    name = (raw["profile"] or "default").strip()
    if name not in PROFILES:
        raise UsageError(f"--profile: unknown {name!r} (expected one of {', '.join(PROFILES)})")
    return PROFILES[name]


def _model(raw: dict[str, str | None]) -> str:
    model = (raw["model"] or CLOSED).strip().lower()
    if model not in MODELS:
        raise UsageError(f"--model: unknown {model!r} (expected one of {', '.join(MODELS)})")
    if model == CLOSED and raw["rates"]:
        raise UsageError(
            "--rates: offered rates need --model open (the closed model takes --users)"
        )
    if model == OPEN and raw["users"]:
        raise UsageError("--users: the open model has no users; give offered rates with --rates")
    return model


def _scenarios(raw: dict[str, str | None], profile: Profile, model: str) -> tuple[str, ...]:
    if not raw["scenarios"]:
        if model == OPEN:
            return tuple(s for s in profile.scenarios if s in OPEN_SCENARIOS)
        return profile.scenarios
    scenarios = parse_names(raw["scenarios"], SCENARIOS, "--scenarios")
    closed_only = [s for s in scenarios if s not in OPEN_SCENARIOS]
    if model == OPEN and closed_only:
        raise UsageError(
            f"--scenarios: {', '.join(closed_only)} cannot run in the open model "
            f"(open model: {', '.join(OPEN_SCENARIOS)})"
        )
    return scenarios


def _stack_addresses(raw: dict[str, str | None], environ: dict[str, str]) -> dict[str, str | None]:
    """The running stack's addresses (`python -m stackctl env`, profile STACK_PROFILE).

    Read here rather than only from what `make bench` exports, so the bench run by hand also
    finds the stack, and registers its Locust in that stack's Prometheus (native mode; Docker
    mode's Prometheus cannot reach a Locust on the host).
    """
    from stackctl.addresses import running_stack_env

    try:
        stack = running_stack_env(load_settings(environ.get("STACK_PROFILE") or "default", environ))
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    return {
        "url": raw["url"] or stack["PUBLIC_URL"],
        "prometheus_url": raw["prometheus_url"] or stack["PROMETHEUS_URL"],
        "metrics_bind": environ.get("LOCUST_METRICS_BIND") or stack.get("LOCUST_METRICS_BIND"),
        "targets_dir": environ.get("PROMETHEUS_TARGETS_DIR") or stack.get("PROMETHEUS_TARGETS_DIR"),
    }


def _prometheus_url(text: str) -> str | None:
    if text.strip().lower() in ("none", "off", "-"):
        return None
    return _url(text, "--prometheus-url")


def _window(raw: dict[str, str | None], profile: Profile) -> tuple[float, float]:
    warmup = _seconds(raw["warmup"], "--warmup", 0, 600) if raw["warmup"] else profile.warmup_s
    measure = (
        _seconds(raw["duration"], "--duration", 1, 3600) if raw["duration"] else profile.measure_s
    )
    return warmup, measure


def parse(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> BenchOptions:
    environ = dict(os.environ if environ is None else environ)
    raw = _raw(argv, environ)
    profile = _profile(raw)
    model = _model(raw)
    scenarios = _scenarios(raw, profile, model)
    targets = parse_names(raw["targets"], TARGETS, "--targets") if raw["targets"] else TARGETS
    users = parse_users(raw["users"], scenarios, profile.users) if raw["users"] else profile.users
    rates = parse_rates(raw["rates"], scenarios, profile.rates) if raw["rates"] else profile.rates
    stack = _stack_addresses(raw, environ)
    warmup_s, measure_s = _window(raw, profile)
    options = BenchOptions(
        url=_url(stack["url"], "--url"),
        prometheus_url=_prometheus_url(stack["prometheus_url"]),
        profile=profile.name,
        scenarios=scenarios,
        targets=targets,
        users={s: users[s] for s in scenarios if s in users},
        warmup_s=warmup_s,
        measure_s=measure_s,
        io_ms=_int(raw["io_ms"], "--io-ms", *BOUNDS["io_ms"]) if raw["io_ms"] else DEFAULTS.io_ms,
        cpu_n=_int(raw["cpu_n"], "--cpu-n", *BOUNDS["cpu_n"]) if raw["cpu_n"] else DEFAULTS.cpu_n,
        out=raw["out"] or "reports",
        direct=parse_direct(raw["direct"]) if raw["direct"] else {},
        model=model,
        rates={s: rates[s] for s in scenarios if s in rates},
        metrics_bind=stack["metrics_bind"],
        targets_dir=stack["targets_dir"],
    )
    _check(options)
    return options


def _check(options: BenchOptions) -> None:
    if not options.scenarios:
        raise UsageError("nothing to run: no scenario of the profile runs in the open model")
    if not options.steps():
        raise UsageError(
            "nothing to run: every selected scenario is not applicable to the selected targets "
            "(WebSocket scenarios exist on asgi only)"
        )
    try:
        for target in options.targets:
            options.scenario_settings(target)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
