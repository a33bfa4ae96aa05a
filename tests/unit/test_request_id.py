"""Request ids: sane incoming ids pass, anything else is replaced by a fresh random one."""

from __future__ import annotations

import os
import re
import threading

import pytest

from gateway_common.request_id import new_request_id, resolve_request_id

FRESH_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.mark.parametrize("incoming", ["abc", "A.b_c:d-1", "x" * 64])
def test_request_id_passes_sane_ids(incoming: str) -> None:
    assert resolve_request_id(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "x" * 65, "a b", "a\nb", "é"])
def test_request_id_replaces_insane_ids(incoming: str | None) -> None:
    generated = resolve_request_id(incoming)
    assert generated != incoming
    assert FRESH_ID.fullmatch(generated)


def test_fresh_ids_are_distinct_across_many_batches() -> None:
    ids = [new_request_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(FRESH_ID.fullmatch(request_id) for request_id in ids)


def test_threads_never_share_a_fresh_id() -> None:
    per_thread: list[list[str]] = [[] for _ in range(8)]

    def draw(into: list[str]) -> None:
        into.extend(new_request_id() for _ in range(3000))

    threads = [threading.Thread(target=draw, args=(ids,)) for ids in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every_id = [request_id for ids in per_thread for request_id in ids]
    assert len(every_id) == 8 * 3000
    assert len(set(every_id)) == len(every_id)


def test_a_forked_worker_draws_ids_of_its_own() -> None:
    new_request_id()  # the parent now holds a drawn batch a fork would copy
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        try:
            os.write(write_end, "".join(new_request_id() for _ in range(20)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child_digits = pipe.read().decode()
    os.waitpid(pid, 0)
    child_ids = {child_digits[i : i + 32] for i in range(0, len(child_digits), 32)}
    parent_ids = {new_request_id() for _ in range(20)}
    assert len(child_ids) == 20
    assert not child_ids & parent_ids
