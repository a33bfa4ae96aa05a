"""``python -m loadtests.lab``: list the labs, or run one (``make lab NAME=...``).

Exit codes: 0 the lab ran (whatever its verdict) or the list was printed; 2 a bad option or no
stack answering (one line on stderr, nothing sent); 1 the lab's prediction did not hold.
"""

from __future__ import annotations

import argparse
import sys

from loadtests.lab.catalog import BY_NAME, LABS
from loadtests.lab.model import Knobs, LabResult, Outcome
from loadtests.lab.runner import Console, Lab, UsageError
from loadtests.lab.stack import LabStack, StackUnreachable


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, not argparse's usage block
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="make lab", description=__doc__.splitlines()[0], add_help=True)
    parser.add_argument("name", nargs="?", help="the lab to run; none: list them")
    parser.add_argument("--n", type=int, help="requests sent at once (labs that take N)")
    parser.add_argument("--ms", type=int, help="the wait, block or hold in ms (labs that take MS)")
    return parser


def list_labs(console: Console) -> None:
    console.say("Labs (run one with: make lab NAME=<name> [N=...] [MS=...]):")
    for lab in LABS:
        options = " ".join(
            f"{spec.name.upper()}={spec.default} ({spec.low}-{spec.high})" for spec in lab.knobs
        )
        console.say(f"  {lab.name:<15} {lab.claim}")
        if options:
            console.say(f"  {'':<15} options: {options}")


def run_lab(lab: Lab, stack: LabStack, knobs: Knobs, console: Console) -> LabResult:
    console.say(f"Lab {lab.name}: {lab.claim}")
    console.say(f"Watch while it runs: {lab.watch}")
    console.say(f"Stack: {stack.public_url} ({stack.mode} mode)")
    console.say()
    return lab.run(stack, knobs, console)


def main(argv: list[str] | None = None) -> int:
    console = Console()
    try:
        args = build_parser().parse_args(argv)
        if not args.name:
            list_labs(console)
            return 0
        lab = BY_NAME.get(args.name)
        if lab is None:
            raise UsageError(
                f"unknown lab {args.name!r}; `make lab` lists them: {', '.join(BY_NAME)}"
            )
        knobs = Knobs(n=args.n, ms=args.ms)
        lab.check_knobs(knobs)
        stack = LabStack.from_environment()
        result = run_lab(lab, stack, knobs, console)
    except (UsageError, StackUnreachable) as exc:
        print(f"lab: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    return 1 if result.verdict.outcome is Outcome.NOT_HELD else 0
