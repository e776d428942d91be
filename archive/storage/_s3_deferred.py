"""Deletions of ``S3Storage`` run off the writer's critical path, many per request (private).

After a package's root METS is stored its commit intent is only clean-up: a crash that
leaves it is repaired by reconcile (``AipStore.complete`` deletes the intent of a committed
package), and removing it need not be durable (:meth:`Storage.put_batches`). So the writer
does not wait for that DELETE: :class:`DeferredDeletes` collects the deletions and a
background task sends them together (S3 ``DeleteObjects``: up to 1000 versions in one
request), after waiting up to ``linger`` seconds for more to come.

- **Nothing is lost silently.** A failed deletion is logged with its cause (its object stays
  behind for reconcile). :meth:`DeferredDeletes.drain` / ``close`` send and wait for every
  pending one at once, :meth:`DeferredDeletes.wait_for` those of some keys (a reader of
  them must not see what this client already removed). The task runs on a
  ``ThreadPoolExecutor`` thread and ends when nothing is pending; the interpreter joins
  such threads at exit, so pending deletions are still sent when nobody calls ``close``.
- **Bounded.** At most ``limit`` deletions wait; a writer that gets ahead of them sends them
  at once and waits, so a slow store slows writers down instead of piling up work.
- **fork.** A child starts empty; the parent's pending deletions stay the parent's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("archive.storage.s3")

DEFAULT_LIMIT = 256
DEFAULT_LINGER = 0.5
"""Seconds a deletion may wait for others to share its request."""
MAX_BATCH = 1000
"""S3's limit of keys per ``DeleteObjects``."""

Victim = tuple[str, str | None]
"""(key, version id); None: every version of the key."""


class DeferredDeletes:
    def __init__(
        self,
        name: str,
        delete: Callable[[Sequence[Victim]], None],
        *,
        limit: int = DEFAULT_LIMIT,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        """``delete`` removes a batch (at most ``MAX_BATCH``); it logs what it could not
        remove, and anything it raises is logged here."""
        self._name = name
        self._delete = delete
        self._limit = max(1, limit)
        self._linger = linger
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._pending: list[Victim] = []
        self._sending: Sequence[Victim] = ()
        self._running = False
        self._urgent = 0  # how many callers wait for the pending deletions to be sent
        self._closing = False
        self._cond = threading.Condition()

    def submit(self, key: str, version: str | None) -> None:
        """Delete ``key`` (that version, or all) soon, in the background."""
        with self._cond:
            if self._pid != os.getpid():  # first use, or a forked child: start empty
                self._pool, self._pid, self._running = None, os.getpid(), False
                self._closing = False
                self._pending, self._sending, self._urgent = [], (), 0
            if len(self._pending) >= self._limit:
                self._wait(lambda: len(self._pending) < self._limit)
            self._pending.append((key, version))
            if not self._running:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._name)
                self._running = True
                self._pool.submit(self._run)
            elif len(self._pending) >= MAX_BATCH:
                self._cond.notify_all()

    def wait_for(self, prefix: str) -> None:
        """Send the pending deletions at once if any is of a key starting with ``prefix``,
        and wait until those are done."""
        with self._cond:
            if self._pid != os.getpid():
                return

            def done() -> bool:
                victims = [*self._pending, *self._sending]
                return not any(key.startswith(prefix) for key, _ in victims)

            if not done():
                self._wait(done)

    def drain(self) -> None:
        """Send every pending deletion now and wait for them (failures are logged)."""
        self.wait_for("")

    def close(self) -> None:
        """Drain, then stop the worker."""
        self.drain()
        with self._cond:
            pool, self._pool = self._pool, None
            self._closing = True  # a lingering worker ends now
            self._cond.notify_all()
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=True)

    def _wait(self, until: Callable[[], bool]) -> None:
        """Hold ``_cond``; make the worker send without lingering until ``until()``."""
        self._urgent += 1
        self._cond.notify_all()
        try:
            self._cond.wait_for(until)
        finally:
            self._urgent -= 1

    def _now(self) -> bool:
        """Send without lingering: someone waits, we close, or a request is full."""
        return self._urgent > 0 or self._closing or len(self._pending) >= MAX_BATCH

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._now():
                    self._cond.wait_for(self._now, timeout=self._linger)
                if not self._pending:
                    self._running = False
                    self._cond.notify_all()
                    return
                self._sending = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                batch = self._sending
            try:
                self._delete(batch)
            except Exception as exc:  # the objects stay for reconcile: say so, go on
                keys = ", ".join(key for key, _ in batch[:3])
                log.warning("deferred delete of %s failed (reconcile removes it): %s", keys, exc)
            finally:
                with self._cond:
                    self._sending = ()
                    self._cond.notify_all()
