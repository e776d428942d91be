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
the request, hands the deposit over and answers.

The hand-over runs on the API process's event loop itself: each ingest process has one end
of a socket pair, the loop writes the pickled deposit to an idle one and reads its answer
(length-prefixed frames). A ``ProcessPoolExecutor`` did the same through two threads of its
own (a queue feeder and a result manager) and a wake-up pipe: four thread hand-offs per
deposit under the contended GIL of a process that also serves HTTP, ~0.5-0.7 ms of CPU
per deposit (per-thread CPU from ``/proc``), where the loop's own reads and writes cost
a few tens of µs.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import socket
import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from archive.errors import StorageUnavailableError
from ingest.pipeline import IngestResult
from ingest.submission import Submission
from kluis.api.deposits import deposit
from kluis.audit import AuditLog
from kluis.settings import KluisSettings

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
_START_TIMEOUT = 120.0


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


def _dead() -> StorageUnavailableError:
    return StorageUnavailableError("ingest-process", "an ingest process died")


class _Child:
    """One ingest process and the API process's end of its socket pair."""

    def __init__(
        self, process: BaseProcess, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer

    async def call(self, request: bytes) -> IngestResult | _Failure:
        """Raises: OSError, asyncio.IncompleteReadError when the process died."""
        # One write, one wake-up of the process: a header alone would wake it to read 8 bytes
        # and block again (a write to a socket whose reader sleeps costs the writer its
        # wake-up, the larger part of this hand-over on a busy host).
        self.writer.write(_HEADER.pack(len(request)) + request)
        await self.writer.drain()
        outcome: IngestResult | _Failure = pickle.loads(await _read_frame(self.reader))
        return outcome

    def stop(self) -> None:
        self.writer.close()  # the process sees end of file and exits


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return await reader.readexactly(size)


class IngestPool:
    """``processes`` ingest processes for one API process, served by its event loop.

    :meth:`start` and :meth:`run_async` run on that loop; :meth:`run` may be called from any
    other thread (the batch handler's worker threads).
    """

    def __init__(
        self,
        settings: KluisSettings,
        processes: int,
        *,
        main: Callable[[KluisSettings, socket.socket], None] | None = None,
    ) -> None:
        """``main``: what each process runs (default :func:`_serve`; tests pass one that dies)."""
        if processes < 1:
            raise ValueError("an ingest pool needs at least one process")
        self._settings = settings
        self._processes = processes
        self._main = main or _serve
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: set[_Child] = set()
        self._starting: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Start every process and open its backends now, not on the first deposits.

        Raises:
            StorageUnavailableError: a process could not open its backends.
        """
        self._loop = asyncio.get_running_loop()
        children = await asyncio.gather(*(self._spawn() for _ in range(self._processes)))
        for child in children:
            self._idle.put_nowait(child)

    def pids(self) -> list[int | None]:
        return [child.process.pid for child in self._children]

    async def _spawn(self) -> _Child:
        ours, theirs = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=self._main, args=(self._settings, theirs), name="kluis-ingest"
        )
        try:
            try:
                # Spawning pickles the settings and forks: off the loop.
                await asyncio.to_thread(process.start)
            finally:
                theirs.close()
            reader, writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            ours.close()  # a process that did start sees end of file and exits
            raise
        child = _Child(process, reader, writer)
        self._children.add(child)
        try:
            ready = pickle.loads(await asyncio.wait_for(_read_frame(reader), _START_TIMEOUT))
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            ready = _Failure(StorageUnavailableError, (), {}, "no answer at start")
        except BaseException:
            self._discard(child)
            raise
        if ready is not None:
            self._discard(child)
            log.error("an ingest process did not start: %s", ready.trace)
            raise StorageUnavailableError("ingest-process", "an ingest process did not start")
        return child

    def run(self, submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult:
        """:func:`kluis.api.deposits.deposit` in a pool process; raises what it raises.
        Blocking: for threads other than the event loop's.

        Raises:
            StorageUnavailableError: a pool process died (it is replaced; whether the deposit
                was stored is for a retry to find out, as after a timeout).
        """
        assert self._loop is not None, "start() the pool first"
        call = self.run_async(submission, pdf, client_id)
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    async def run_async(
        self, submission: Submission, pdf: bytes, client_id: str | None
    ) -> IngestResult:
        """As :meth:`run`, on the event loop. Shielded: a cancelled caller (a client gone)
        leaves the deposit to finish in its process, which then serves the next one."""
        request = pickle.dumps((submission, pdf, client_id), protocol=pickle.HIGHEST_PROTOCOL)
        if self._closed:
            raise StorageUnavailableError("ingest-process", "the ingest pool is closed")
        child = await self._idle.get()
        outcome = await asyncio.shield(asyncio.ensure_future(self._call(child, request)))
        if isinstance(outcome, _Failure):
            raise outcome.rebuild()
        return outcome

    async def _call(self, child: _Child, request: bytes) -> IngestResult | _Failure:
        try:
            outcome = await child.call(request)
        except (OSError, asyncio.IncompleteReadError, EOFError):
            log.error("an ingest process died; starting another")
            self._replace_dead(child)
            raise _dead() from None
        self._idle.put_nowait(child)
        return outcome

    def _replace_dead(self, died: _Child) -> None:
        """Replace ``died`` and every idle process that has died too (one death is often
        many: an OOM kill, an operator's signal), so each costs at most one deposit."""
        dead = [died]
        alive: list[_Child] = []
        while not self._idle.empty():
            child = self._idle.get_nowait()
            (alive if child.process.exitcode is None else dead).append(child)
        for child in alive:
            self._idle.put_nowait(child)
        for child in dead:
            self._discard(child)
            if not self._closed:
                task = asyncio.ensure_future(self._restart())
                self._starting.add(task)
                task.add_done_callback(self._starting.discard)

    async def _restart(self) -> None:
        while not self._closed:
            try:
                child = await self._spawn()
            except StorageUnavailableError:
                await asyncio.sleep(1.0)  # its backends are down: keep trying
                continue
            if self._closed:
                self._discard(child)
            else:
                self._idle.put_nowait(child)
            return

    def _discard(self, child: _Child) -> None:
        self._children.discard(child)
        child.stop()
        if child.process.is_alive():
            child.process.kill()

    async def close(self) -> None:
        """Stop every process (a deposit still in one finishes first: its process exits at
        the end of file that follows)."""
        self._closed = True
        starting = list(self._starting)
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        children = list(self._children)
        self._children.clear()
        for child in children:
            child.stop()
        for child in children:
            await asyncio.to_thread(child.process.join, 30)
            if child.process.is_alive():
                child.process.kill()


# ------------------------------------------------------------------ in the pool process

_services: Any = None
"""The pool process's backends (this module is the process's composition root)."""
_audit: AuditLog | None = None
"""The pool process's audit log (over its own storage backend, the same store)."""


def _serve(settings: KluisSettings, sock: socket.socket) -> None:
    """An ingest process: open the backends, say so, then answer deposits until end of file."""
    global _services, _audit
    with sock, sock.makefile("rwb") as stream:
        try:
            from kluis.wiring import build_services

            _services = build_services(settings)
            _audit = AuditLog(_services.storage)
        except BaseException as exc:
            _send(stream, _failure(exc))
            raise
        _send(stream, None)
        try:
            while True:
                header = stream.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return  # the API process closed its end: done
                (size,) = _HEADER.unpack(header)
                submission, pdf, client_id = pickle.loads(stream.read(size))
                _send(stream, _deposit(submission, pdf, client_id))
        finally:
            _services.close()


def _send(stream: Any, outcome: object) -> None:
    try:
        raw = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception carrying something unpicklable: a plain 500
        raw = pickle.dumps(_Failure(RuntimeError, (f"unpicklable outcome: {exc}",), {}, ""))
    stream.write(_HEADER.pack(len(raw)))
    stream.write(raw)
    stream.flush()


def _failure(exc: BaseException) -> _Failure:
    return _Failure(type(exc), exc.args, dict(exc.__dict__), traceback.format_exc())


def _deposit(submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult | _Failure:
    assert _audit is not None, "_serve opens the audit log first"
    try:
        return deposit(_services.ingestor, _audit, _services.keyer, submission, pdf, client_id)
    except Exception as exc:
        return _failure(exc)
