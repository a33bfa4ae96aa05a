"""Bench options: profiles, command line and environment variables (pure, no Locust import).

Every option has a flag and an environment variable; the flag wins. Invalid input raises
:class:`UsageError`, which the entry point turns into a message and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from loadtests.bench import targets as bench_targets
from loadtests.bench.results import CLOSED, MODELS, OPEN, NotApplicable
from loadtests.bench.targets import Target, TargetError
from loadtests.settings import (
    BOUNDS,
    OPEN_RATE_MAX,
    OPEN_SCENARIOS,
    SCENARIOS,
    TARGETS,
    ScenarioSettings,
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
    #: Seconds measured per step; with a budget, the most (less when the steps need it).
    measure_s: float
    description: str
    #: What `--targets` defaults to.
    targets: tuple[str, ...] = ("wsgi", "asgi")
    #: The whole run's time budget, which the measurement windows shrink to fit (None: fixed).
    budget_s: float | None = None


#: Seconds between two blocks (a new Locust runner), and what a run spends besides its steps:
#: probing the stack, waiting for Prometheus's last scrape (cross-check), writing the report.
BLOCK_PAUSE_S = 1.0
RUN_OVERHEAD_S = 40.0
#: The shortest measurement window a budget may shrink a step to.
MIN_MEASURE_S = 4.0

#: Default: 22 steps of 3 s warm-up + 10 s measurement, about 5 minutes with the pauses.
#: Quick: 9 steps of 2 + 5 s, about 75 s (the integration test's run).
#: Matrix: every running variant; its windows shrink so the run fits 15 minutes (13 variants:
#: 84 steps of 3 + 6 s).
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
            "poll": (10, 40),
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
            "poll": (20,),
        },
        rates={"io": (10.0, 30.0), "hello": (100.0,), "cpu": (30.0,)},
        warmup_s=2.0,
        measure_s=5.0,
        description="io at 10/40 users, hello, stream, ws_echo; about 75 seconds",
    ),
    "matrix": Profile(
        name="matrix",
        scenarios=("io", "hello", "stream", "poll", "ws_echo"),
        # io and poll at two levels, below and above the bounded variants' capacities (sync 2,
        # uWSGI and Granian 8, gthread 16), so each line shows where its variant stops.
        users={
            "io": (10, 50),
            "cpu": (4,),
            "hello": (20,),
            "stream": (10,),
            "ws_echo": (20,),
            "ws_chat": (10,),
            "poll": (5, 20),
        },
        rates={"io": (10.0, 30.0), "hello": (100.0,), "cpu": (30.0,)},
        warmup_s=3.0,
        measure_s=10.0,
        description=(
            "every running variant: io at 10/50 users, hello, stream, poll at 5/20 pollers, "
            "ws_echo where it has WebSockets; at most 15 minutes"
        ),
        targets=(bench_targets.ALL,),
        budget_s=15 * 60.0,
    ),
}

#: The scenarios' defaults (one copy: the fields of ScenarioSettings).
DEFAULTS = ScenarioSettings()
#: The poll publisher's rate, messages/s: from one every 10 s to 100 a second.
POLL_RATE_BOUNDS = (0.1, 100.0)

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
    (
        "--profile",
        "BENCH_PROFILE",
        "default (~5 min), quick (~75 s) or matrix (every running variant, <= 15 min) [default]",
    ),
    ("--scenarios", "BENCH_SCENARIOS", f"comma list of {', '.join(SCENARIOS)} [profile's]"),
    (
        "--targets",
        "BENCH_TARGETS",
        "comma list of variants (flask, fastapi, flask-gthread, ...; wsgi = flask, asgi = "
        "fastapi) or 'all' (every variant running behind the stack) [wsgi,asgi; matrix: all]",
    ),
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
    (
        "--poll-rate",
        "BENCH_POLL_RATE",
        f"poll scenario: messages/s the publisher posts [{DEFAULTS.poll_rate:g}]",
    ),
    (
        "--poll-timeout-ms",
        "BENCH_POLL_TIMEOUT_MS",
        f"poll scenario: how long each GET /poll waits (timeout_ms) [{DEFAULTS.poll_timeout_ms}]",
    ),
    ("--out", "BENCH_OUT", "reports folder; the run goes to <out>/<timestamp>/ [reports]"),
    (
        "--direct",
        "BENCH_DIRECT",
        "bypass nginx: 'wsgi=http://127.0.0.1:8001,asgi=http://127.0.0.1:8002' (TARGET=URL "
        "for any target name) [off]",
    ),
]


@dataclass
class BenchOptions:
    url: str
    prometheus_url: str | None
    profile: str
    scenarios: tuple[str, ...]
    #: The target names asked for (`--targets`), resolved into ``targets`` by `resolve`.
    requested: tuple[str, ...]
    users: dict[str, tuple[int, ...]]
    warmup_s: float
    measure_s: float
    io_ms: int
    cpu_n: int
    out: str
    poll_rate: float = DEFAULTS.poll_rate
    poll_timeout_ms: int = DEFAULTS.poll_timeout_ms
    direct: dict[str, str] = field(default_factory=dict)
    model: str = CLOSED
    rates: dict[str, tuple[float, ...]] = field(default_factory=dict)
    #: Where Locust's exporter listens, and the Prometheus file-discovery folder it registers in
    #: (the running stack's, so its load-test dashboard shows the bench).
    metrics_bind: str | None = None
    targets_dir: str | None = None
    #: Whether the measurement window is the profile's to fit into its budget (no --duration).
    fit_window: bool = False
    #: The variants to load, from the stack's /variants.json (`resolve`).
    targets: tuple[Target, ...] = ()
    #: Scenario x target cells found missing on the stack (a route that answers 404/501).
    absent: tuple[NotApplicable, ...] = ()

    def levels(self, scenario: str) -> tuple[float, ...]:
        """The steps of a scenario: user counts (closed model) or offered rates (open)."""
        return self.rates[scenario] if self.model == OPEN else self.users[scenario]

    def host(self, target: Target) -> str:
        """Base URL Locust targets: nginx, or the service itself with --direct."""
        return self.direct.get(target.name, self.url)

    def url_of(self, target: Target, path: str) -> str:
        return f"{self.host(target)}{target.prefix}{path}"

    def healthz_url(self, target: Target) -> str:
        return self.url_of(target, "/healthz")

    def _why_not(self, scenario: str, target: Target) -> str | None:
        if not target.serves(scenario):
            return f"{target.variant} has no WebSockets (/variants.json)"
        for na in self.absent:
            if (na.scenario, na.target) == (scenario, target.name):
                return na.reason
        return None

    def steps(self) -> list[tuple[str, Target, float]]:
        """(scenario, target, users or rate) in run order, applicable ones only.

        Order: for each scenario, the targets take turns (the wsgi block, then the asgi block,
        ...), so each service is idle while another one is loaded; the cross-check needs those
        pauses.
        """
        out = []
        for scenario in self.scenarios:
            for target in self.targets:
                if self._why_not(scenario, target) is None:
                    out.extend((scenario, target, n) for n in self.levels(scenario))
        return out

    def blocks(self) -> list[tuple[str, Target]]:
        return list(dict.fromkeys((s, t) for s, t, _ in self.steps()))

    def not_applicable(self) -> list[NotApplicable]:
        out = []
        for scenario in self.scenarios:
            for target in self.targets:
                reason = self._why_not(scenario, target)
                if reason is not None:
                    out.append(NotApplicable(scenario, target.name, reason))
        return out

    def scenario_settings(self, target: Target) -> ScenarioSettings:
        return ScenarioSettings(
            target=target.name,
            io_ms=self.io_ms,
            cpu_n=self.cpu_n,
            poll_rate=self.poll_rate,
            poll_timeout_ms=self.poll_timeout_ms,
            path_prefix=target.prefix,
        )

    def drain_s(self, scenario: str, target: Target) -> float:
        """After a poll block, the polls still queued behind a bounded variant's busy slots, at
        worst each waiting out its timeout (the publisher's own POST may queue behind them)."""
        if scenario != "poll" or target.capacity is None or self.model == OPEN:
            return 0.0
        queued = max(0, max(self.levels(scenario)) - target.capacity)
        return queued * self.scenario_settings(target).poll_timeout_ms / 1000 / target.capacity

    def estimated_seconds(self, pause_s: float = BLOCK_PAUSE_S) -> float:
        """The steps, the pauses between blocks and the poll blocks' drains (not the overhead
        of the run: RUN_OVERHEAD_S)."""
        blocks = self.blocks()
        return (
            len(self.steps()) * (self.warmup_s + self.measure_s)
            + len(blocks) * pause_s
            + sum(self.drain_s(s, t) for s, t in blocks)
        )

    @property
    def budget_s(self) -> float | None:
        return PROFILES[self.profile].budget_s

    def over_budget(self) -> bool:
        budget = self.budget_s
        return budget is not None and self.estimated_seconds() + RUN_OVERHEAD_S > budget


def parse_direct(text: str) -> dict[str, str]:
    out = {}
    for part in _split(text):
        name, sep, url = part.partition("=")
        if not sep or name.strip() not in TARGETS:
            raise UsageError(
                f"--direct: expected TARGET=URL,... with TARGET one of {', '.join(TARGETS)}, "
                f"got {part!r}"
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


def _seconds(text: str, what: str, low: float, high: float, unit: str = "seconds") -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: expected {unit}, got {text!r}") from None
    if not low <= value <= high:
        raise UsageError(f"{what}: must be between {low:g} and {high:g} {unit}, got {value:g}")
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
    users = parse_users(raw["users"], scenarios, profile.users) if raw["users"] else profile.users
    rates = parse_rates(raw["rates"], scenarios, profile.rates) if raw["rates"] else profile.rates
    stack = _stack_addresses(raw, environ)
    warmup_s, measure_s = _window(raw, profile)
    try:
        requested = bench_targets.parse_names(raw["targets"]) if raw["targets"] else None
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    options = BenchOptions(
        url=_url(stack["url"], "--url"),
        prometheus_url=_prometheus_url(stack["prometheus_url"]),
        profile=profile.name,
        scenarios=scenarios,
        requested=requested or profile.targets,
        users={s: users[s] for s in scenarios if s in users},
        warmup_s=warmup_s,
        measure_s=measure_s,
        io_ms=_int(raw["io_ms"], "--io-ms", *BOUNDS["io_ms"]) if raw["io_ms"] else DEFAULTS.io_ms,
        cpu_n=_int(raw["cpu_n"], "--cpu-n", *BOUNDS["cpu_n"]) if raw["cpu_n"] else DEFAULTS.cpu_n,
        poll_rate=(
            _seconds(raw["poll_rate"], "--poll-rate", *POLL_RATE_BOUNDS, unit="messages/s")
            if raw["poll_rate"]
            else DEFAULTS.poll_rate
        ),
        poll_timeout_ms=(
            _int(raw["poll_timeout_ms"], "--poll-timeout-ms", *BOUNDS["poll_timeout_ms"])
            if raw["poll_timeout_ms"]
            else DEFAULTS.poll_timeout_ms
        ),
        out=raw["out"] or "reports",
        direct=parse_direct(raw["direct"]) if raw["direct"] else {},
        model=model,
        rates={s: rates[s] for s in scenarios if s in rates},
        metrics_bind=stack["metrics_bind"],
        targets_dir=stack["targets_dir"],
        fit_window=not raw["duration"],
    )
    if not options.scenarios:
        raise UsageError("nothing to run: no scenario of the profile runs in the open model")
    if bench_targets.ALL in options.requested and options.direct:
        raise UsageError("--targets all reads what runs behind nginx; with --direct, name them")
    return options


def needs_stack_variants(options: BenchOptions) -> bool:
    """Whether some target is reached through nginx (its prefix comes from /variants.json)."""
    return any(name not in options.direct for name in options.requested)


def resolve(
    options: BenchOptions,
    running: Sequence[Target],
    absent: Sequence[NotApplicable] = (),
    environ: dict[str, str] | None = None,
) -> BenchOptions:
    """The options with their targets looked up in ``running`` (the stack's /variants.json;
    `--direct` ones in the registry), the cells found ``absent`` left out, checked, and the
    measurement window fitted to the profile's budget."""
    environ = dict(os.environ if environ is None else environ)
    direct = {
        name: bench_targets.registry_entry(name, environ)
        for name in options.requested
        if name in options.direct
    }
    try:
        targets = bench_targets.resolve(options.requested, running, direct)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    resolved = replace(options, targets=targets, absent=tuple(absent))
    if not resolved.steps():
        why = "; ".join(
            f"{na.scenario} on {na.target}: {na.reason}" for na in resolved.not_applicable()
        )
        raise UsageError(
            "nothing to run: every selected scenario is not applicable to the selected targets "
            f"({why})"
        )
    try:
        for target in targets:
            resolved.scenario_settings(target)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return fitted_to_budget(resolved)


def fitted_to_budget(options: BenchOptions) -> BenchOptions:
    """With a budget (the matrix profile) and no --duration: the longest measurement window, at
    most the profile's, for which the whole run fits the budget; never below MIN_MEASURE_S
    (`over_budget` then says so)."""
    budget = options.budget_s
    if budget is None or not options.fit_window:
        return options
    steps = len(options.steps())
    fixed = options.estimated_seconds() - steps * (options.warmup_s + options.measure_s)
    per_step = (budget - RUN_OVERHEAD_S - fixed) / steps - options.warmup_s
    measure = max(MIN_MEASURE_S, min(PROFILES[options.profile].measure_s, math.floor(per_step)))
    return replace(options, measure_s=float(measure))
