"""How per-item work is spread over a few threads (``archive.threads.each``)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from archive.threads import each as _each


def test_results_come_in_item_order_from_several_threads() -> None:
    seen: set[str] = set()

    def work(n: int) -> int:
        seen.add(threading.current_thread().name)
        time.sleep(0.001 * (n % 3))  # uneven items: threads take them out of order
        return n * n

    with ThreadPoolExecutor(4, thread_name_prefix="t") as pool:
        assert _each(pool, 4, work, list(range(60))) == [n * n for n in range(60)]
    assert len(seen) > 1  # the pool's threads took items, not only the caller


def test_the_first_failure_in_item_order_is_raised_after_every_item_ran() -> None:
    done: list[int] = []

    def work(n: int) -> int:
        if n in (7, 3):
            time.sleep(0.01 if n == 3 else 0)  # 7 fails first in time, 3 first in order
            raise ValueError(n)
        done.append(n)
        return n

    with ThreadPoolExecutor(3) as pool, pytest.raises(ValueError) as raised:
        _each(pool, 3, work, list(range(20)))
    assert raised.value.args == (3,)
    assert sorted(done) == [n for n in range(20) if n not in (3, 7)]


def test_one_worker_runs_in_the_caller() -> None:
    with ThreadPoolExecutor(1) as pool:
        names = _each(pool, 1, lambda _n: threading.current_thread().name, [1, 2, 3])
    assert set(names) == {threading.current_thread().name}
