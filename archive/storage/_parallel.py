"""A small thread pool for the backends' batch writes (private).

Batches are few and short (one package's files), so the pool starts lazily, and again in a
child after ``fork`` (threads do not survive it). :meth:`Parallel.run` returns only when every
item has finished, even when one failed: a caller must never go on (close a file, write the
commit marker) while part of its batch is still running.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from archive.threads import each

T = TypeVar("T")
R = TypeVar("R")


class Parallel:
    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def run(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, concurrently; raises the first failure, in
        item order, after all have finished."""
        if len(items) < 2 or self._workers < 2:
            return [fn(item) for item in items]
        if self._pid and self._pid != os.getpid():  # a forked child: the lock may be held
            self._lock = threading.Lock()
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
                self._pid = os.getpid()
            pool = self._pool
        # The calling thread takes items too: ``workers`` + 1 run at once, none idle while
        # items are left.
        return each(pool, self._workers + 1, fn, items)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=True)
