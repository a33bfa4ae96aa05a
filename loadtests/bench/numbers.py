"""The one number formatter of the bench: progress lines, findings, tables and the report."""

from __future__ import annotations

NA = "n/a"


def number(x: float | int | bool | None, digits: int = 1) -> str:
    """3 significant-ish figures: integers as they are, >= 100 without decimals, else `digits`."""
    if x is None:
        return NA
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}f}"


def rate(x: float | None) -> str:
    return NA if x is None else f"{number(float(x))}/s"


def ms(x: float | None) -> str:
    """A duration given in ms, switched to seconds from one second on."""
    if x is None:
        return NA
    return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms"


def pct(x: float | None) -> str:
    return NA if x is None else f"{x:.0f} %"


def duration(seconds: float | None) -> str:
    """A run's length: '75 s', '14m05s'."""
    if seconds is None:
        return NA
    if seconds < 100:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
