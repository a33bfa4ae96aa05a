"""A strict JSON reader for request bodies: every hostile document is one `ValueError`.

Python's `json.loads` accepts or trips on several things a client can send on purpose:

- deep nesting (`[[[[...`) raises `RecursionError`, which is not a `ValueError`;
- `\\ud800` (a lone UTF-16 surrogate) decodes into a `str` that cannot be encoded back
  to UTF-8, so the failure only shows when a response or a log line is written;
- `NaN`, `Infinity` and `1e999` (which overflows to infinity) are not JSON numbers;
- a 5,000-digit integer hits Python's int/str conversion limit with a message about
  `sys.set_int_max_str_digits`;
- `{"a": 1, "a": 2}` silently keeps the last value, where another parser keeps the first.

`loads` refuses all of them with a `StrictJsonError` that says why, so a service answers
400 and never 500. The bounds are passed in by the caller (`gateway_common.validation`
holds the contract's values).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A JSON string (skipped: brackets inside it are text) or one bracket. An unterminated string
# runs to the end (`"?`), so each character is looked at once whatever the input.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_MAX_CHARS = 40


class StrictJsonError(ValueError):
    """The document is not one this reader accepts; the message says why."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_MAX_CHARS else text[:_SHOWN_MAX_CHARS] + "...")


def nesting_depth(text: str) -> int:
    """How deep arrays and objects nest in `text` (0 for a scalar), without parsing it."""
    if text.count("[") + text.count("{") == 0:
        return 0
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise StrictJsonError(f"number {_shown(literal)} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise StrictJsonError(f"duplicate key {_shown(key)}")
        document[key] = value
    return document


def _check_strings(document: Any) -> None:
    """Refuse a lone surrogate in any string, key or value (depth is already bounded)."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and (found := _SURROGATE.search(item)):
            raise StrictJsonError(
                f"string holds a lone UTF-16 surrogate {ascii(found.group())}, "
                "which is not a Unicode character"
            )


def loads(text: str, *, max_depth: int, max_int_digits: int) -> Any:
    """Parse `text` as strict JSON or raise `StrictJsonError`."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise StrictJsonError(f"arrays and objects nest {depth} deep, at most {max_depth}")

    def bounded_int(literal: str) -> int:
        digits = len(literal.lstrip("-"))
        if digits > max_int_digits:
            raise StrictJsonError(
                f"an integer has {digits} digits, at most {max_int_digits} are accepted"
            )
        return int(literal)

    try:
        document = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except StrictJsonError:
        raise
    except RecursionError as exc:  # the depth scan should have stopped it; never a 500
        raise StrictJsonError(f"arrays and objects nest too deep, at most {max_depth}") from exc
    except ValueError as exc:  # json.JSONDecodeError: the syntax itself
        raise StrictJsonError(str(exc)) from exc
    _check_strings(document)
    return document
