"""The work both services do: waits (I/O stand-ins) and a pure-Python CPU loop."""

from __future__ import annotations

import asyncio
import time

_MASK_32 = 0xFFFF_FFFF  # keeps the checksum a small int (no bignum cost)


def cpu_work(n: int) -> int:
    """Burn CPU for `n` iterations and return a deterministic checksum.

    The checksum is the sum of i*i for i in [0, n) modulo 2**32, so tests can check it
    against the closed form. Pure Python on purpose: it holds the GIL, like real
    request-bound Python code does. n=100000 takes a few milliseconds on a current CPU.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    acc = 0
    for i in range(n):
        acc = (acc + i * i) & _MASK_32
    return acc


def blocking_wait(ms: int) -> float:
    """Sleep `ms` milliseconds with `time.sleep`; return the measured wait in ms."""
    started = time.perf_counter()
    time.sleep(ms / 1000)
    return elapsed_ms(started)


async def async_wait(ms: int) -> float:
    """Sleep `ms` milliseconds with `asyncio.sleep`; return the measured wait in ms."""
    started = time.perf_counter()
    await asyncio.sleep(ms / 1000)
    return elapsed_ms(started)


def elapsed_ms(started: float) -> float:
    """Milliseconds since `started` (a `time.perf_counter()` value), rounded to 0.001."""
    return round((time.perf_counter() - started) * 1000, 3)
