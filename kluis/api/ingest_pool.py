"""Deposits over HTTP computed in one pool of ingest processes shared by every HTTP worker.

A deposit is ~15 ms of Python (pypdf, pyHanko, lxml) and a Python process computes on one
core. With ``kluis serve --workers N`` each connection stays with the worker that accepted it,
and which worker accepts is chance: measured with 4 agencies on 2 workers, the deposits in
flight were split 3/1 or 4/0 more than half of the time. A pool per worker made every worker
start enough processes for all the deposits (2 x cores each, so 8 for 2 workers on 2 cores,
against the best batch layout's 4), and the surplus only cost context switches. Now the
server starts ``ingest_processes`` processes once (:class:`IngestProcesses`, in
``kluis serve``'s own process), all blocked in ``accept`` on one Unix socket; a worker hands
a deposit over by connecting to it (:class:`IngestPool`), and the kernel gives the
connection to one idle process (or queues it until one is), whichever worker sent it. A
batch ingest never had that problem (each of its processes has a fixed share).

The process runs exactly :func:`kluis.api.deposits.deposit` (:meth:`Ingestor.ingest` and
the deposit's audit record), with its own backends opened from the same settings (storage
decides idempotency with conditional creates, the index takes updates through its durable
outbox, as with several CLI processes). The worker gets the receipt only after the process's
ingest returned, which is after the package is durably stored. Errors cross back as the same
domain exceptions (rebuilt without calling ``__init__``, whose signature differs from
``args`` for most of them), so the problem table answers exactly as it does in process.

One connection per deposit, one frame each way (an 8-byte length, then a pickle): a
connection is the unit the kernel balances, and a Unix ``connect`` costs a few tens of µs.
A process that dies mid-deposit closes its connection: that deposit (only) gets a 503 and
the owner starts a replacement; deposits wait in the socket's backlog meanwhile. The
processes exit when their owner closes (or dies): each watches a pipe from it, and finishes
the deposit in hand first. The socket lives in a fresh 0700 directory, so only this user
can hand over deposits (it bypasses authentication).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import pickle
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from archive.errors import StorageUnavailableError
from ingest.pipeline import IngestResult
from ingest.submission import Submission
from kluis.api.ingest_frames import HEADER, Failure, frame, read_frame
from kluis.api.ingest_process import serve
from kluis.settings import KluisSettings

log = logging.getLogger(__name__)

_START_TIMEOUT = 120.0
_STOP_TIMEOUT = 30.0
_BACKLOG = 1024
ADDRESS_ENV = "KLUIS_INGEST_SOCKET"
"""Where ``kluis serve`` tells its workers the ingest processes listen."""

ProcessMain = Callable[[KluisSettings, socket.socket, Connection, Connection], None]
"""What an ingest process runs: settings, the listening socket, its end of the owner's
pipe (end of file: exit), where to say it is ready (``None``) or why it is not."""


def _dead() -> StorageUnavailableError:
    return StorageUnavailableError("ingest-process", "an ingest process died")


def _unreachable(exc: OSError) -> StorageUnavailableError:
    return StorageUnavailableError("ingest-process", f"the ingest processes are gone: {exc}")


@dataclass
class _Child:
    process: BaseProcess
    lifeline: Connection
    """The owner's end of the pipe the process watches: closing it tells the process to go."""


class IngestProcesses:
    """``processes`` ingest processes serving deposits on one Unix socket; a process that
    dies is replaced. Owned by one process (``kluis serve``'s, or an app's of its own)."""

    def __init__(
        self, settings: KluisSettings, processes: int, *, main: ProcessMain | None = None
    ) -> None:
        """``main``: what each process runs (default :func:`kluis.api.ingest_process.serve`;
        tests pass one that dies)."""
        if processes < 1:
            raise ValueError("an ingest pool needs at least one process")
        self._settings = settings
        self._processes = processes
        self._main = main or serve
        self._directory = Path(tempfile.mkdtemp(prefix="kluis-ingest-"))  # mode 0700
        self.address = str(self._directory / "socket")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.address)
        self._listener.listen(_BACKLOG)
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._wake_r, self._wake_w = multiprocessing.Pipe(duplex=False)
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        """Start every process and wait until each has opened its backends.

        Raises:
            StorageUnavailableError: a process could not open its backends (none is left
                running then).
        """
        try:
            for _ in range(self._processes):
                self._children.append(self._spawn())
        except BaseException:
            self.close()
            raise
        self._supervisor = threading.Thread(
            target=self._supervise, name="kluis-ingest-supervisor", daemon=True
        )
        self._supervisor.start()

    def pids(self) -> list[int | None]:
        with self._lock:
            return [child.process.pid for child in self._children]

    def _spawn(self) -> _Child:
        watched, lifeline = multiprocessing.Pipe(duplex=False)
        ready_r, ready_w = multiprocessing.Pipe(duplex=False)
        process = multiprocessing.get_context("spawn").Process(
            target=self._main,
            args=(self._settings, self._listener, watched, ready_w),
            name="kluis-ingest",
        )
        try:
            process.start()  # spawning pickles the settings and the listening socket
        finally:
            watched.close()
            ready_w.close()
        child = _Child(process, lifeline)
        try:
            if not ready_r.poll(_START_TIMEOUT):
                raise EOFError("no answer")
            ready = ready_r.recv()
        except (EOFError, OSError):
            ready = Failure(StorageUnavailableError, (), {}, "no answer at start")
        finally:
            ready_r.close()
        if ready is not None:
            self._stop(child)
            log.error("an ingest process did not start: %s", ready.trace)
            raise StorageUnavailableError("ingest-process", "an ingest process did not start")
        return child

    def _supervise(self) -> None:
        """Replace every process that dies (an OOM kill, an operator's signal, a crash)."""
        while not self._closed.is_set():
            with self._lock:
                sentinels = {child.process.sentinel: child for child in self._children}
            ready = wait([*sentinels, self._wake_r])
            for sentinel in ready:
                child = sentinels.get(sentinel) if isinstance(sentinel, int) else None
                if child is None or self._closed.is_set():
                    continue
                code = child.process.exitcode
                log.error("an ingest process died (exit code %s); starting another", code)
                self._stop(child)
                replacement = self._respawn()
                with self._lock:
                    self._children.remove(child)
                    if replacement is not None:
                        self._children.append(replacement)

    def _respawn(self) -> _Child | None:
        while not self._closed.is_set():
            try:
                child = self._spawn()
            except StorageUnavailableError:
                self._closed.wait(1.0)  # its backends are down: keep trying
                continue
            if self._closed.is_set():
                self._stop(child)
                return None
            return child
        return None

    @staticmethod
    def _stop(child: _Child, *, timeout: float = 0.0) -> None:
        child.lifeline.close()  # the process sees end of file: it exits after its deposit
        child.process.join(timeout)
        if child.process.is_alive():
            child.process.kill()
            child.process.join()

    def close(self) -> None:
        """Stop every process; a deposit still in one finishes first (up to 30 s in all)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake_w.send(None)
        if self._supervisor is not None:
            self._supervisor.join()
        self._listener.close()  # connections still queued get end of file: 503
        with self._lock:
            children, self._children = self._children, []
        for child in children:
            child.lifeline.close()
        deadline = time.monotonic() + _STOP_TIMEOUT
        for child in children:
            self._stop(child, timeout=max(0.0, deadline - time.monotonic()))
        self._wake_r.close()
        self._wake_w.close()
        shutil.rmtree(self._directory, ignore_errors=True)


class IngestPool:
    """The HTTP worker's side: hands deposits to the ingest processes at ``address``.

    With ``owned``, this pool starts and closes those processes itself (an app not run by
    ``kluis serve``, as in tests); otherwise their owner is ``kluis serve``.
    """

    def __init__(self, address: str, *, owned: IngestProcesses | None = None) -> None:
        self._address = address
        self._owned = owned

    @classmethod
    def own(cls, settings: KluisSettings, processes: int) -> IngestPool:
        """A pool with processes of its own (started by :meth:`start`)."""
        processes_ = IngestProcesses(settings, processes)
        return cls(processes_.address, owned=processes_)

    async def start(self) -> None:
        """Start the owned processes (if any) and open their backends now, not on the first
        deposits.

        Raises:
            StorageUnavailableError: a process could not open its backends.
        """
        if self._owned is not None:
            await asyncio.to_thread(self._owned.start)

    async def close(self) -> None:
        if self._owned is not None:
            await asyncio.to_thread(self._owned.close)

    def pids(self) -> list[int | None]:
        """The owned processes' ids (none when ``kluis serve`` owns them)."""
        return [] if self._owned is None else self._owned.pids()

    def run(self, submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult:
        """:func:`kluis.api.deposits.deposit` in an ingest process; raises what it raises.
        Blocking: for threads other than the event loop's (the batch handler's).

        Raises:
            StorageUnavailableError: the process died mid-deposit (whether the deposit was
                stored is for a retry to find out, as after a timeout), or none is reachable.
        """
        request = _request(submission, pdf, client_id)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(self._address)
                sock.sendall(request)
                with sock.makefile("rb") as stream:
                    answer = read_frame(stream)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise _unreachable(exc) from None
        except (OSError, EOFError):
            raise _dead() from None
        return _outcome(answer)

    async def run_async(
        self, submission: Submission, pdf: bytes, client_id: str | None
    ) -> IngestResult:
        """As :meth:`run`, on the event loop. A cancelled caller (a client gone) closes the
        connection; the process still finishes the deposit, then takes the next."""
        request = _request(submission, pdf, client_id)
        try:
            reader, writer = await asyncio.open_unix_connection(self._address)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise _unreachable(exc) from None
        try:
            # One write: the process is woken once, with the whole deposit to read.
            writer.write(request)
            (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
            answer = await reader.readexactly(size)
        except (OSError, asyncio.IncompleteReadError):
            raise _dead() from None
        finally:
            writer.close()
        return _outcome(answer)


def _request(submission: Submission, pdf: bytes, client_id: str | None) -> bytes:
    return frame(pickle.dumps((submission, pdf, client_id), protocol=pickle.HIGHEST_PROTOCOL))


def _outcome(answer: bytes) -> IngestResult:
    outcome: IngestResult | Failure = pickle.loads(answer)
    if isinstance(outcome, Failure):
        raise outcome.rebuild()
    return outcome
