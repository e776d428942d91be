"""``Parallel``: the backends' batch pool (private helper of archive.storage)."""

from __future__ import annotations

import threading

import pytest

from archive.storage._parallel import Parallel


def test_the_caller_takes_items_too_so_workers_plus_one_run_at_once() -> None:
    # Two waves of three items that each wait for the other two of their wave: with two pool
    # threads this only finishes when the calling thread takes items of both waves.
    waves = [threading.Barrier(3, timeout=10), threading.Barrier(3, timeout=10)]
    ran: list[str] = []

    def item(i: int) -> int:
        waves[i // 3].wait()
        ran.append(threading.current_thread().name)
        return i * i

    parallel = Parallel(2, "t-par")
    try:
        assert parallel.run(item, list(range(6))) == [i * i for i in range(6)]
    finally:
        parallel.close()
    assert ran.count(threading.current_thread().name) == 2


def test_every_item_finishes_and_the_first_failure_in_item_order_is_raised() -> None:
    done: list[int] = []

    def item(i: int) -> None:
        done.append(i)
        if i in (3, 1):
            raise ValueError(f"item {i}")

    parallel = Parallel(2, "t-par")
    try:
        with pytest.raises(ValueError, match="item 1"):
            parallel.run(item, list(range(6)))
    finally:
        parallel.close()
    assert sorted(done) == list(range(6))
