"""cpu_work is deterministic, the same in both services, and checkable in closed form."""

from __future__ import annotations

import asyncio

import pytest

from gateway_common import workload


@pytest.mark.parametrize("n", [1, 2, 10, 1000, 100_000])
def test_cpu_work_matches_closed_form(n: int) -> None:
    # sum of i*i for i in [0, n) = (n-1) n (2n-1) / 6, modulo 2**32
    assert workload.cpu_work(n) == ((n - 1) * n * (2 * n - 1) // 6) % 2**32


def test_cpu_work_is_deterministic() -> None:
    assert workload.cpu_work(12345) == workload.cpu_work(12345)


def test_cpu_work_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        workload.cpu_work(0)


def test_waits_measure_their_time() -> None:
    assert workload.blocking_wait(15) >= 14.0
    assert asyncio.run(workload.async_wait(15)) >= 14.0
