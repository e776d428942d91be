"""Deposits over HTTP computed in a pool of ingest processes.

A deposit is ~15 ms of Python (pypdf, pyHanko, lxml) and a Python process computes on one
core. With ``kluis serve --workers N`` each connection stays with the worker that accepted it,
and which worker accepts is chance: measured with 4 agencies on 2 workers, the deposits in
flight were split 3/1 or 4/0 more than half of the time, so one worker queued on its GIL
while the other core idled through its fsync waits. A batch ingest never has that problem
(each of its processes has a fixed share). With ``ingest_processes`` P > 0 every worker
hands each deposit to one of P single-threaded processes of its own, so deposits compute
in parallel whichever worker accepted them, and the OS spreads them over the cores.

The pool process runs exactly :meth:`ingest.pipeline.Ingestor.ingest`, with its own backends
opened from the same settings (storage decides idempotency with conditional creates, the
index takes updates through its durable outbox, as with several CLI processes). The caller
gets the receipt only after the child's ingest returned, which is after the package is
durably stored, as in process. Errors cross back as the same domain exceptions (rebuilt
without calling ``__init__``, whose signature differs from ``args`` for most of them), so the
problem table answers exactly as it does in process. The pool process also writes the
deposit's audit record (:func:`kluis.api.deposits.deposit`), so the API process only parses
the request, hands the deposit over and answers; an ``async`` handler awaits the pool's
future directly (:meth:`IngestPool.run_async`), without a hop through the thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from archive.errors import StorageUnavailableError
from ingest.pipeline import IngestResult
from ingest.submission import Submission
from kluis.api.deposits import deposit
from kluis.audit import AuditLog
from kluis.settings import KluisSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Failure:
    """A domain exception from a pool process, in a form that always pickles."""

    cls: type[BaseException]
    args: tuple[Any, ...]
    state: dict[str, Any]
    trace: str

    def rebuild(self) -> BaseException:
        exc = self.cls.__new__(self.cls)
        exc.args = self.args
        exc.__dict__.update(self.state)
        return exc


class IngestPool:
    """``processes`` ingest processes for one API process. Thread-safe."""

    def __init__(self, settings: KluisSettings, processes: int) -> None:
        if processes < 1:
            raise ValueError("an ingest pool needs at least one process")
        self._settings = settings
        self._processes = processes
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_open_services,
            initargs=(self._settings,),
        )

    def warm(self) -> None:
        """Start every process and open its backends now, not on the first deposits."""
        barrier = multiprocessing.get_context("spawn").Manager()
        try:
            ready = barrier.Barrier(self._processes)
            futures = [self._pool.submit(_wait, ready) for _ in range(self._processes)]
            for future in futures:
                future.result(timeout=120)
        finally:
            barrier.shutdown()

    def run(self, submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult:
        """:func:`kluis.api.deposits.deposit` in a pool process; raises what it raises.

        Raises:
            StorageUnavailableError: a pool process died (the pool is restarted; whether
                the deposit was stored is for a retry to find out, as after a timeout).
        """
        pool = self._pool
        try:
            outcome = pool.submit(_deposit, submission, pdf, client_id).result()
        except BrokenProcessPool:
            raise self._restart(pool) from None
        return _result(outcome)

    async def run_async(
        self, submission: Submission, pdf: bytes, client_id: str | None
    ) -> IngestResult:
        """As :meth:`run`, awaited on the event loop: submitting only queues the call (the
        executor's own threads pickle and send it), and the answer arrives as a callback."""
        pool = self._pool
        try:
            future: Future[IngestResult | _Failure] = pool.submit(
                _deposit, submission, pdf, client_id
            )
            outcome = await asyncio.wrap_future(future)
        except BrokenProcessPool:
            raise self._restart(pool) from None
        return _result(outcome)

    def _restart(self, pool: ProcessPoolExecutor) -> StorageUnavailableError:
        log.error("an ingest process died; restarting the pool")
        with self._lock:
            if self._pool is pool:
                self._pool = self._start()
        pool.shutdown(wait=False, cancel_futures=True)
        return StorageUnavailableError("ingest-process", "an ingest process died")

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _result(outcome: IngestResult | _Failure) -> IngestResult:
    if isinstance(outcome, _Failure):
        raise outcome.rebuild()
    return outcome


# ------------------------------------------------------------------ in the pool process

_services: Any = None
"""The pool process's backends (this module is the process's composition root)."""
_audit: AuditLog | None = None
"""The pool process's audit log (over its own storage backend, the same store)."""


def _open_services(settings: KluisSettings) -> None:
    global _services, _audit
    from kluis.wiring import build_services

    _services = build_services(settings)
    _audit = AuditLog(_services.storage)


def _wait(ready: Any) -> None:
    ready.wait(timeout=120)  # every process takes one: all of them start


def _deposit(submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult | _Failure:
    assert _audit is not None, "the pool's initializer opens the audit log"
    try:
        return deposit(_services.ingestor, _audit, _services.keyer, submission, pdf, client_id)
    except Exception as exc:
        import traceback

        return _Failure(type(exc), exc.args, dict(exc.__dict__), traceback.format_exc())
