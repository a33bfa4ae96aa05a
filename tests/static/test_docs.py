"""The docs name only make targets that exist, and `make help` tells what `make test` runs.

Commands are read from code (inline `...` spans and fenced blocks) of README.md and docs/*.md,
where a reader copies them from; "make sure" in prose is not a command.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# `name other: deps`, not `NAME := value` nor `$(VENV)/.synced:` (a file rule).
_RULE = re.compile(r"^([A-Za-z0-9_.][A-Za-z0-9_. -]*?)\s*::?(?!=)", re.MULTILINE)
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_SPAN = re.compile(r"`([^`\n]+)`")
# `make`, then variables (NAME=value) and flags, then the targets.
_MAKE = re.compile(
    r"(?:^|[\s;(&|])make((?:\s+[A-Za-z_][A-Za-z0-9_]*=\S*|\s+-\S+)*)((?:\s+[a-z][a-z0-9_-]*)+)"
)


def makefile_targets(text: str) -> set[str]:
    targets: set[str] = set()
    for match in _RULE.finditer(text):
        names = match.group(1).split()
        targets.update(name for name in names if name != ".PHONY")
    return targets


def code_of(markdown: str) -> list[str]:
    blocks = _FENCE.findall(markdown)
    prose = _FENCE.sub("", markdown)
    return blocks + _SPAN.findall(prose)


def named_targets(code: str) -> set[str]:
    names: set[str] = set()
    for line in code.splitlines():  # comments too: "# or: make native-up" is advice
        for match in _MAKE.finditer(line):
            # "make status   make logs" on one line: the second `make` is not a target.
            names.update(name for name in match.group(2).split() if name != "make")
    return names


def test_the_parsers_see_what_they_should():
    # .PHONY only declares; a target needs a rule.
    assert makefile_targets("up: setup ## x\n.PHONY: up b\nX := 1\n$(VENV)/.synced: f\n") == {"up"}
    code = code_of(
        "run `make up` or `STACK=native make -j2 test chaos`, make sure\n```\nmake x\n```"
    )
    assert set().union(*map(named_targets, code)) == {"up", "test", "chaos", "x"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_docs_name_only_existing_make_targets(doc: Path):
    targets = makefile_targets(MAKEFILE.read_text())
    named = set().union(*map(named_targets, code_of(doc.read_text())))
    if doc.name == "README.md":
        assert named, "README.md names no make target at all: is the parser still right?"
    missing = sorted(named - targets)
    assert not missing, f"{doc.name} names make targets the Makefile lacks: {missing}"


def test_make_help_says_that_make_test_runs_the_reliability_tests():
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)  # the target names are bold
    described = {line.split()[0]: line for line in plain.splitlines() if line.startswith("  ")}
    assert "reliability" in described["test"], described["test"]
