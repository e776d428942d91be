"""Rebuild the search index from storage alone: streamed, resumable.

Invariants:
    * Storage is the truth: every committed document is (re)submitted, and every indexed id
      that storage does not hold is removed. Nothing is read from the index but its ids.
    * One entry per document, keyed by the document id (its first package's id), projected
      from its newest version (``AipStore.index_record``: the package's index file and text,
      checked against the root METS; packages without an index file: one root METS parse).
      Later versions are not documents of their own; an index entry under a version's id is
      stale and removed.
    * The index stays searchable during the rebuild (upserts, no ``clear`` first).
    * Documents are processed in ascending id order. With a ``checkpoint`` file, the last id
      whose batch the index has durably accepted is recorded after every batch; a rerun
      after an interruption (Ctrl-C, crash, kill) starts after it. The file is removed when
      the rebuild completes. A package committed meanwhile below the checkpoint is indexed
      by ingest itself (ingest submits after it commits) or by reconcile.
    * A package committed while the rebuild runs is never removed by it: the stale ids are
      those indexed *and* absent from a second storage listing taken after the index was
      read (ingest commits to storage before it submits to the index).
    * Reading documents runs on ``read_workers`` threads or in ``processes`` forked worker
      processes; results are consumed in id order either way. From the filesystem the reads
      are CPU-bound (file reads, hashing, analysis) and hold the GIL: measured on 2 cores,
      2 threads are slower than 1, 2 processes faster. Threads pay off when reads wait on
      I/O (S3).
    * Legal holds and disposal are not part of the package manifest yet, so documents are
      projected with ``on_hold=False``, ``disposed=False``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast, runtime_checkable

from archive.model import IndexRecord
from search.base import Index
from search.model import IndexDocument
from search.projection import OwnerKeyer, project_record

T = TypeVar("T")


class PackageSource(Protocol):
    """What reindex needs from ``archive.store.AipStore``."""

    def document_ids(self) -> Iterator[str]:
        """Ids of the committed documents (first versions), in ascending order."""
        ...

    def index_record(self, document_id: str) -> IndexRecord:
        """The newest version's metadata and text and the document's creation time."""
        ...


@runtime_checkable
class PreparingIndex(Protocol):
    """Optional for an :class:`~search.base.Index`: bulk loading in two steps, so a rebuild
    runs the per-document CPU work that needs no writer (analysis, digest) where it reads
    the documents, in its reader processes (``TantivyIndex``). A backend without it is fed
    plain documents through :meth:`~search.base.Index.load`."""

    def prepare(self, document: IndexDocument) -> Any:
        """A picklable form of ``document`` ready for :meth:`load_prepared`; pure (it runs in
        forked reader processes). Raises: ValueError (a malformed ``aip_id``)."""
        ...

    def load_prepared(self, prepared: Sequence[Any]) -> int:
        """:meth:`~search.base.Index.load` of prepared documents: the same index content."""
        ...

    def bulk(self) -> AbstractContextManager[None]:
        """A block in which successive loads may keep their writer."""
        ...


@dataclass(frozen=True)
class ReindexStats:
    indexed: int
    """Documents (re)submitted to the index by this run."""
    removed: int
    """Indexed ids that storage no longer holds."""
    resumed_after: str | None = None
    """The checkpoint this run started after, if it resumed."""
    total: int = 0
    """Committed documents in storage when the run started."""


def projected(
    store: PackageSource,
    keyer: OwnerKeyer,
    document_ids: Iterable[str],
    *,
    read_workers: int = 1,
    processes: int = 1,
) -> Iterator[IndexDocument]:
    """The index documents of ``document_ids``, in that order; reads on ``read_workers``
    threads, or (``processes`` > 1, which wins) in that many forked processes."""
    return prepared(
        store, keyer, document_ids, _unchanged, read_workers=read_workers, processes=processes
    )


def _unchanged(document: IndexDocument) -> IndexDocument:
    return document


def prepared(
    store: PackageSource,
    keyer: OwnerKeyer,
    document_ids: Iterable[str],
    prepare: Callable[[IndexDocument], T],
    *,
    read_workers: int = 1,
    processes: int = 1,
) -> Iterator[T]:
    """``prepare`` of the index documents of ``document_ids``, in that order, run where the
    document is read: on ``read_workers`` threads, or (``processes`` > 1, which wins) in that
    many forked processes."""

    def one(document_id: str) -> T:
        return prepare(project_record(store.index_record(document_id), keyer))

    if processes > 1:
        yield from _prepared_in_processes(document_ids, processes, one)
        return
    if read_workers <= 1:
        yield from map(one, document_ids)
        return
    window: deque[Future[T]] = deque()
    with ThreadPoolExecutor(read_workers, thread_name_prefix="kluis-reindex") as pool:
        for document_id in document_ids:  # a bounded window of reads ahead, consumed in order
            window.append(pool.submit(one, document_id))
            if len(window) >= read_workers * 32:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


_CHUNK = 256
"""Documents per message from a reader process (amortises the pipe round trip; results are
~4 KB per document, so a message stays around 1 MB)."""


def _prepare_chunk(job: Callable[[str], object], ids: list[str]) -> list[object | None]:
    """In a reader: ``job`` of each of ``ids``; None where reading failed (the parent reads
    that one again itself, so the caller gets the genuine exception: archive errors do not
    all survive pickling)."""
    out: list[object | None] = []
    for document_id in ids:
        try:
            out.append(job(document_id))
        except Exception:
            out.append(None)
    return out


_HEADER = struct.Struct("<Q")


def _send(fd: int, payload: bytes) -> None:
    """One length-prefixed message on a pipe (blocks while the reader is behind: that is
    the window's bound)."""
    view = memoryview(_HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


def _receive(fd: int) -> bytes:
    """One message of :func:`_send`.

    Raises:
        ChildProcessError: the pipe ended early (the reader process died).
    """
    header = _read_exactly(fd, _HEADER.size)
    return _read_exactly(fd, _HEADER.unpack(header)[0])


def _read_exactly(fd: int, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        n = os.readv(fd, [view])
        if n == 0:
            raise ChildProcessError("a reindex reader process ended before its work was done")
        view = view[n:]
    return bytes(buffer)


def _reader(job: Callable[[str], object], chunks: list[list[str]], fd: int) -> None:
    """The body of one forked reader process: its chunks, in order, onto its pipe; then
    ``_exit`` (never return into the parent's code, run no exit handlers)."""
    code = 0
    try:
        for chunk in chunks:
            payload = pickle.dumps(_prepare_chunk(job, chunk), protocol=pickle.HIGHEST_PROTOCOL)
            _send(fd, payload)
    except BaseException:  # the parent gave up (closed pipe) or we were interrupted
        code = 1
    finally:
        os._exit(code)


def _prepared_in_processes(
    document_ids: Iterable[str], processes: int, one: Callable[[str], T]
) -> Iterator[T]:
    """Read, project and prepare in ``processes`` forked reader processes, in order.

    From the filesystem a read is CPU-bound (small file reads, SHA-256, analysis after it)
    and holds the GIL, so threads do not help; processes do. *fork*: the readers inherit
    ``one`` and its store (storage clients are not picklable), the id list, and pay no
    imports. They only read storage and run Python; they never touch what the parent's
    threads hold (index writer, indexer thread). Chunk k of ``_CHUNK`` ids goes to reader
    k mod ``processes``, which sends its results pickled, in order, on its own pipe; this
    process reads the pipes round robin, so documents come out in id order. A reader is at
    most one chunk ahead (a pipe write blocks until it is read): the window is bounded.
    No ``multiprocessing.Pool``: its three helper threads and per-task bookkeeping cost
    the parent, which also adds every document to the index, ~20 % more CPU per document.
    A failed read is repeated here, so the caller sees the store's own exception (see
    :func:`_prepare_chunk`). Readers are killed and reaped when the iterator ends, fails or
    is closed early.

    Raises:
        ChildProcessError: a reader process died.
    """
    ids = list(document_ids)
    chunks = [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
    readers: list[tuple[int, int]] = []  # (pid, read end of its pipe)
    try:
        for j in range(min(processes, len(chunks))):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover  (the child; coverage does not follow forks)
                os.close(read_end)
                _reader(one, chunks[j::processes], write_end)
            os.close(write_end)
            readers.append((pid, read_end))
        for k, chunk in enumerate(chunks):
            results = pickle.loads(_receive(readers[k % len(readers)][1]))
            for document_id, doc in zip(chunk, results, strict=True):
                # Only this module's ``one`` made ``doc``: it is a T (None: read again here).
                yield cast(T, doc) if doc is not None else one(document_id)
    finally:
        for pid, read_end in readers:
            os.close(read_end)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # done already, or abandoned: readers only read
            os.waitpid(pid, 0)


def _read_checkpoint(path: Path | None) -> str | None:
    if path is None or not path.exists():
        return None
    after = json.loads(path.read_text(encoding="utf-8")).get("after")
    return str(after) if after else None


def _write_checkpoint(path: Path, after: str, indexed: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"after": after, "indexed": indexed}), encoding="utf-8")
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def reindex(
    store: PackageSource,
    index: Index,
    keyer: OwnerKeyer,
    *,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 5000,
    checkpoint: Path | None = None,
    read_workers: int = 1,
    processes: int = 1,
    on_total: Callable[[int, int], None] | None = None,
) -> ReindexStats:
    """Submit every committed document to ``index`` and remove ids storage lacks.

    Batches go through :meth:`Index.load` (direct bulk writes where the backend can; the
    tantivy backend falls back to its outbox while another process holds the writer).
    A batch is one tantivy commit, and every commit adds segments to merge. A
    :class:`PreparingIndex` (tantivy) gets its documents prepared where they are read (in
    the reader processes) and keeps one writer for the whole run
    (:meth:`PreparingIndex.bulk`), so tantivy merges while it loads: on 20,000 documents
    adding cost ~350 µs CPU per document with batches of 500 (~1,300 with a writer per
    batch) and ~130 from 5,000 on. The checkpoint advances per batch, so an interrupted run
    repeats at most one batch.
    ``progress`` is called with the running count of packages done (including those a
    resumed run skips) after each batch; ``on_total(total, already_done)`` once, first.
    Ends with ``index.refresh()``: when this process can write the index, everything is
    applied and visible on return; when another process is the indexer (the server), the
    rest of its backlog is applied by it shortly after.

    Raises:
        ValueError: ``batch_size`` < 1, or a package with a non-canonical owner id.
        IndexUnavailableError: the index cannot accept updates.
        Whatever ``store`` raises for an unreadable package: a rebuild that silently skips
            packages would look complete while it is not.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    resumed = _read_checkpoint(checkpoint)
    listed = sorted(store.document_ids())
    todo = [a for a in listed if resumed is None or a > resumed]
    done = len(listed) - len(todo)
    if on_total is not None:
        on_total(len(listed), done)
    indexed = 0
    if isinstance(index, PreparingIndex):
        prepare: Callable[[IndexDocument], Any] = index.prepare
        load: Callable[[Sequence[Any]], int] = index.load_prepared
        session: AbstractContextManager[None] = index.bulk()
    else:
        prepare, load, session = _unchanged, index.load, nullcontext()
    batch: list[tuple[str, Any]] = []

    def flush() -> None:
        nonlocal indexed, batch, done
        load([item for _, item in batch])
        indexed += len(batch)
        done += len(batch)
        if checkpoint is not None:
            _write_checkpoint(checkpoint, batch[-1][0], done)
        batch = []
        if progress is not None:
            progress(done)

    # Reader processes are forked on the first document, before the session's writer exists.
    items = prepared(store, keyer, todo, prepare, read_workers=read_workers, processes=processes)
    with session:
        for document_id, item in zip(todo, items, strict=True):
            batch.append((document_id, item))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    index.refresh()
    seen = set(listed)
    candidates = set(index.ids()) - seen
    stale = sorted(candidates - set(store.document_ids())) if candidates else []
    for start in range(0, len(stale), batch_size):
        index.remove(stale[start : start + batch_size])
    if stale:
        index.refresh()
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return ReindexStats(
        indexed=indexed, removed=len(stale), resumed_after=resumed, total=len(listed)
    )
