"""Spreading per-item work over a few threads: the caller and some threads of a pool.

Used by the storage backends' batch writes (:class:`archive.storage._parallel.Parallel`) and by
disposal execution. The work is mostly Python under one GIL with storage waits in between, so
the threads take items one after another from a shared counter instead of getting a future
each (a submit, a lock, a wake-up and a GIL hand-off per item cost more CPU than many items'
own work), and the calling thread takes items too instead of only waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from itertools import count
from typing import Any, TypeVar

__all__ = ["each"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def each(
    pool: ThreadPoolExecutor, workers: int, fn: Callable[[_T], _R], items: Sequence[_T]
) -> list[_R]:
    """``[fn(item) for item in items]`` on ``workers`` threads (the caller and ``workers - 1``
    of ``pool``), each taking the next item when it is free. Returns only when every item has
    finished, even when one failed (a caller must never go on while part of its batch still
    runs), then raises the first failure in item order."""
    if workers < 2 or len(items) < 2:
        return [fn(item) for item in items]
    results: list[Any] = [None] * len(items)
    errors: list[BaseException | None] = [None] * len(items)
    taken = count()  # next() is atomic under the GIL: every index is taken once

    def take() -> None:
        while (i := next(taken)) < len(items):
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # raised below, in item order
                errors[i] = exc

    helpers: list[Future[None]] = [pool.submit(take) for _ in range(min(workers, len(items)) - 1)]
    try:
        take()
    finally:
        wait(helpers)
    for helper in helpers:
        helper.result()  # take() keeps what fn raises; anything else is a bug: raise it
    for error in errors:
        if error is not None:
            raise error
    return results
