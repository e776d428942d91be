"""The embedded search backend: a tantivy index fed through a durable outbox.

tantivy allows exactly one ``IndexWriter`` per index across all processes (a second one
gets ``LockBusy``; the lock is freed when its holder exits or is killed). So:

* ``submit``/``remove``/``clear`` never touch the index: they append an entry to
  ``<directory>/outbox/`` (see :mod:`search._outbox`) and return once it is durable.
* The *indexer* is whichever process holds the writer. :meth:`TantivyIndex.start_indexer`
  runs a daemon thread that keeps trying to take the writer and, while it holds it, applies
  the outbox every ``commit_interval`` seconds: per entry, in name order, an upsert is
  ``delete(aip_id)`` + ``add`` and a removal is ``delete(aip_id)``; then one commit; then
  the applied entries are deleted. A crash before the deletion re-applies them: harmless.
* If the indexer process dies, another process's indexer thread (or ``refresh``) takes the
  writer on its next try and drains what was left.
* Readers reload the index before every search (about 0.2 ms), so a commit by any process
  is visible to the next search. Submit-to-visible is about ``commit_interval``.

Layout under ``directory``: ``tantivy/`` (the index), ``outbox/``, ``outbox-rejected/``,
``kluis-index.json`` (schema and analysis versions).

Invariants:
    * The index is a projection: everything in it can be rebuilt from storage
      (:func:`search.reindex.reindex`). An acknowledged submit is never lost: it stays in the
      outbox until a commit contains it.
    * This object holds the writer only inside the indexer thread or for the duration of
      one ``refresh``/``close`` drain when no indexer thread runs; ``close`` releases it.
    * No tantivy exception leaves this module: they become
      :class:`~search.errors.IndexUnavailableError` (with ``from exc``).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType

import tantivy

from search import _tantivy_query
from search._outbox import Entry, Outbox
from search._paging import check_aip_ids, check_query, check_retention
from search._tantivy_schema import (
    BACKEND,
    hit_from_stored,
    open_index,
    tantivy_fields,
    to_tantivy,
)
from search.errors import IndexUnavailableError
from search.model import Hit, IdPage, IndexDocument, Page, Query

log = logging.getLogger(__name__)

MAX_BATCH_DOCUMENTS = 2000
"""Documents applied per commit at most; a larger backlog takes several commits."""
_ID_CHUNK = 10_000
_POLL_SECONDS = 0.02


def _checked_fields(doc: IndexDocument) -> dict[str, object]:
    check_aip_ids([doc.aip_id])
    return tantivy_fields(doc)


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """:meth:`TantivyIndex.prepare` of a document: picklable, the fields for the writer and
    the document itself for the outbox fallback."""

    document: IndexDocument
    fields: dict[str, object]


class TantivyIndex:
    """:class:`~search.base.Index` on an embedded tantivy index under ``directory``."""

    name = BACKEND

    def __init__(
        self,
        directory: Path,
        *,
        commit_interval: float = 0.5,
        refresh_timeout: float = 2.0,
        writer_heap_bytes: int = 64_000_000,
    ) -> None:
        """Open (or create) the index; does not take the writer.

        Args:
            commit_interval: seconds between two outbox drains of the indexer thread.
            refresh_timeout: how long :meth:`refresh` waits for another process's indexer.
            writer_heap_bytes: tantivy writer memory budget (at least 15 MB).

        Raises:
            IndexUnavailableError: the directory cannot be used, or holds an index of another
                schema or analysis version.
        """
        if commit_interval <= 0 or refresh_timeout < 0:
            raise ValueError("commit_interval must be > 0 and refresh_timeout >= 0")
        self.directory = Path(directory)
        self._commit_interval = commit_interval
        self._refresh_timeout = refresh_timeout
        self._heap = writer_heap_bytes
        self._index = open_index(self.directory)
        self._schema = self._index.schema
        try:
            self._outbox = Outbox(self.directory / "outbox")
        except OSError as exc:
            raise IndexUnavailableError(BACKEND, f"outbox: {exc}") from exc
        self._writer: tantivy.IndexWriter | None = None
        self._keep_writer = False
        """Inside :meth:`bulk`: loads keep the writer they take."""
        self._lock = threading.RLock()
        """Guards ``_writer``: held while taking, using or releasing it."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ------------------------------------------------------------------ writes (any process)
    def submit(self, documents: Sequence[IndexDocument]) -> None:
        """Durably accept upserts keyed by ``aip_id``; searchable after the next drain.

        Raises:
            ValueError: an ``aip_id`` outside :data:`search._paging.AIP_ID_PATTERN`.
            IndexUnavailableError: the outbox entry could not be written, or closed.
        """
        docs = tuple(documents)
        check_aip_ids([d.aip_id for d in docs])
        if docs:
            self._append(lambda: self._outbox.upsert(docs))

    def remove(self, aip_ids: Sequence[str]) -> None:
        """Durably accept removals (unknown ids are ignored).

        Raises:
            ValueError: a malformed id.
            IndexUnavailableError: the outbox entry could not be written, or closed.
        """
        ids = tuple(aip_ids)
        check_aip_ids(ids)
        if ids:
            self._append(lambda: self._outbox.remove(ids))

    def clear(self) -> None:
        """Remove every document submitted before this call, then :meth:`refresh`.

        Raises:
            IndexUnavailableError: as :meth:`submit` and :meth:`refresh`.
        """
        self._append(self._outbox.clear)
        self.refresh()

    def load(
        self,
        documents: Iterable[IndexDocument],
        *,
        progress: Callable[[int], None] | None = None,
        commit_every: int = 100_000,
        workers: int = 1,
    ) -> int:
        """Bulk upserts for rebuilds: written straight into the index when this process can
        take the writer (bypassing the outbox; the outbox is drained first so nothing older
        overwrites what is loaded), else :meth:`submit` in batches. Returns the count.

        Everything loaded is committed (durable and visible) when this returns, except in the
        fallback, where the other process's indexer applies it shortly after. ``workers`` > 1
        runs the Dutch analysis (the main cost) in that many spawned processes.

        Raises:
            ValueError: a malformed ``aip_id`` or a value tantivy cannot hold.
            IndexUnavailableError: the index failed, or this index is closed.
        """

        def direct(writer: tantivy.IndexWriter) -> int:
            if workers > 1:
                with multiprocessing.get_context("spawn").Pool(workers) as pool:
                    fields = pool.imap(_checked_fields, documents, chunksize=128)
                    return self._add_all(writer, fields, progress, commit_every)
            return self._add_all(writer, map(_checked_fields, documents), progress, commit_every)

        return self._load(direct, lambda: self._load_via_outbox(documents, progress))

    def prepare(self, document: IndexDocument) -> PreparedDocument:
        """The per-document CPU work of :meth:`load_prepared` that needs no writer: the Dutch
        analysis, the digest, the field values. Pure (reads nothing of this object), so
        reindex runs it in its reader processes and this process only adds to the writer.

        Raises:
            ValueError: a malformed ``aip_id``.
        """
        return PreparedDocument(document, _checked_fields(document))

    def load_prepared(
        self, prepared: Sequence[PreparedDocument], *, commit_every: int = 100_000
    ) -> int:
        """:meth:`load` of documents already passed through :meth:`prepare`; the same index
        content. Falls back to the outbox (with the documents) like :meth:`load`.

        Raises:
            ValueError: a value tantivy cannot hold.
            IndexUnavailableError: the index failed, or this index is closed.
        """

        def direct(writer: tantivy.IndexWriter) -> int:
            fields = (p.fields for p in prepared)
            return self._add_all(writer, fields, None, commit_every)

        def fallback() -> int:
            return self._load_via_outbox((p.document for p in prepared), None)

        return self._load(direct, fallback)

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Within this block, a writer taken by :meth:`load`/:meth:`load_prepared` is kept
        for the next call instead of being opened and released per call (one per batch of a
        rebuild); each call still commits. Released on exit unless the indexer thread runs.

        The writer is taken by the first load inside the block, not on entry: a rebuild forks
        its reader processes before that, from a process without tantivy's writer threads.
        """
        self._check_open()
        with self._lock:
            self._keep_writer = True
        try:
            yield
        finally:
            with self._lock:
                self._keep_writer = False
                if self._thread is None and self._writer is not None:
                    self._release_writer()

    def _load(
        self,
        direct: Callable[[tantivy.IndexWriter], int],
        fallback: Callable[[], int],
    ) -> int:
        """``direct(writer)`` after draining the outbox when this process can hold the
        writer, else ``fallback()``."""
        self._check_open()
        with self._lock:
            own = self._writer is None
            if own:
                try:
                    # One indexing thread: a rebuild already keeps both cores busy with its
                    # reader processes, and a second thread only competed with them
                    # (reindex of 20,000 on 2 cores, alternating runs: total CPU 384-407
                    # µs/doc with one, 462-534 with two; wall 2,700-3,000 vs 870-2,460/s).
                    self._writer = self._index.writer(
                        heap_size=max(self._heap, 256_000_000), num_threads=1
                    )
                except ValueError as exc:
                    if "LockBusy" not in str(exc):
                        raise IndexUnavailableError(BACKEND, f"cannot open writer: {exc}") from exc
            if self._writer is not None:
                try:
                    self._drain()
                    return direct(self._writer)
                finally:
                    if own and not self._keep_writer and self._writer is not None:
                        self._release_writer()
        return fallback()

    def _add_all(
        self,
        writer: tantivy.IndexWriter,
        fields: Iterator[dict[str, object]],
        progress: Callable[[int], None] | None,
        commit_every: int,
    ) -> int:
        count = 0
        try:
            for values in fields:
                writer.delete_documents_by_term("aip_id", str(values["aip_id"]))
                writer.add_document(tantivy.Document.from_dict(values, self._schema))
                count += 1
                if count % commit_every == 0:
                    writer.commit()
                if progress is not None and count % 500 == 0:
                    progress(count)
            writer.commit()
        except ValueError:
            self._abandon(writer)
            raise
        if progress is not None:
            progress(count)
        self._reload()
        return count

    def _load_via_outbox(
        self, documents: Iterable[IndexDocument], progress: Callable[[int], None] | None
    ) -> int:
        count = 0
        batch: list[IndexDocument] = []
        for doc in documents:
            batch.append(doc)
            if len(batch) >= MAX_BATCH_DOCUMENTS:
                self.submit(batch)
                count += len(batch)
                batch = []
                if progress is not None:
                    progress(count)
        if batch:
            self.submit(batch)
            count += len(batch)
        if progress is not None:
            progress(count)
        return count

    def _append(self, write: Callable[[], object]) -> None:
        self._check_open()
        try:
            write()
        except OSError as exc:
            raise IndexUnavailableError(BACKEND, f"cannot write outbox entry: {exc}") from exc

    # ------------------------------------------------------------------ the indexer
    @property
    def holds_writer(self) -> bool:
        """True while this object holds the index writer (it is the indexer)."""
        return self._writer is not None

    def start_indexer(self) -> None:
        """Start the daemon thread that takes the writer when it can and drains the outbox.

        Idempotent. If another process holds the writer, the thread retries every
        ``commit_interval`` and takes over when that process exits or dies.

        Raises:
            IndexUnavailableError: this index is closed.
        """
        self._check_open()
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run_indexer, name=f"kluis-indexer:{self.directory}", daemon=True
            )
            self._thread.start()

    def _run_indexer(self) -> None:
        sweeps = 0
        while not self._stop.is_set():
            try:
                with self._lock:
                    if self._take_writer():
                        self._drain()
                sweeps += 1
                if sweeps % 1000 == 1:
                    self._outbox.sweep_temporaries()
            except Exception:  # the thread must survive to retry; the cause is logged
                log.exception("search indexer: drain failed; retrying")
            self._stop.wait(self._commit_interval)

    def _take_writer(self) -> bool:
        """Hold the writer if we do or can; False when another holder has it."""
        if self._writer is not None:
            return True
        try:
            self._writer = self._index.writer(heap_size=self._heap, num_threads=1)
        except ValueError as exc:
            if "LockBusy" in str(exc):
                return False
            raise IndexUnavailableError(BACKEND, f"cannot open writer: {exc}") from exc
        log.info("search indexer: took the writer of %s", self.directory)
        return True

    def _release_writer(self) -> None:
        writer, self._writer = self._writer, None
        del writer  # dropping the Rust IndexWriter frees the cross-process lock

    def _drain(self) -> int:
        """Apply the outbox as it is now, in batches (writer and ``_lock`` held). Returns entries.

        Raises:
            IndexUnavailableError: a write or commit failed; nothing was acknowledged and the
                writer was released (the next attempt starts from a fresh writer).
        """
        writer = self._writer
        assert writer is not None
        applied = 0
        horizon: str | None = None  # entries arriving meanwhile wait for the next drain
        while True:
            try:
                names = [n for n in self._outbox.pending() if horizon is None or n <= horizon]
            except OSError as exc:
                raise IndexUnavailableError(BACKEND, f"cannot list outbox: {exc}") from exc
            if not names:
                return applied
            horizon = horizon or names[-1]
            try:
                batch = list(self._outbox.read(names, MAX_BATCH_DOCUMENTS))
            except OSError as exc:
                raise IndexUnavailableError(BACKEND, f"cannot read outbox: {exc}") from exc
            operations = [(entry, self._prepare(entry)) for entry in batch]
            ready = [(e, docs) for e, docs in operations if docs is not None]
            try:
                for entry, docs in ready:
                    self._apply(writer, entry, docs)
                writer.commit()
            except ValueError as exc:
                self._abandon(writer)
                raise IndexUnavailableError(BACKEND, f"commit failed: {exc}") from exc
            try:
                self._outbox.acknowledge([e.name for e, _ in ready])
            except OSError as exc:  # committed; re-applying later is harmless
                raise IndexUnavailableError(BACKEND, f"cannot acknowledge: {exc}") from exc
            applied += len(ready)

    def _prepare(self, entry: Entry) -> list[tantivy.Document] | None:
        """The tantivy documents of an entry, or None when the entry was rejected."""
        try:
            return [to_tantivy(d, self._schema) for d in entry.documents]
        except (ValueError, OverflowError) as exc:
            self._outbox.reject(entry.name, exc)
            return None

    def _apply(
        self, writer: tantivy.IndexWriter, entry: Entry, docs: list[tantivy.Document]
    ) -> None:
        if entry.op == "clear":
            writer.delete_documents_by_query(tantivy.Query.all_query())
        for aip_id in entry.aip_ids:
            writer.delete_documents_by_term("aip_id", aip_id)
        for source, doc in zip(entry.documents, docs, strict=True):
            writer.delete_documents_by_term("aip_id", source.aip_id)
            writer.add_document(doc)

    def _abandon(self, writer: tantivy.IndexWriter) -> None:
        try:
            writer.rollback()
        except ValueError:
            log.warning("search indexer: rollback failed too", exc_info=True)
        self._release_writer()

    # ------------------------------------------------------------------ visibility
    def refresh(self) -> None:
        """Apply pending updates now if this process can, and make them visible here.

        If another process holds the writer, wait (at most ``refresh_timeout`` seconds) for
        the entries pending at call time to be applied, then reload.

        Raises:
            IndexUnavailableError: applying failed, or the outbox cannot be read, or closed.
        """
        self._check_open()
        deadline = time.monotonic() + self._refresh_timeout
        try:
            waiting = set(self._outbox.pending())
            while not self._drain_if_possible() and waiting:
                if time.monotonic() >= deadline:
                    log.warning(
                        "refresh: %d updates still pending in %s", len(waiting), self.directory
                    )
                    break
                time.sleep(_POLL_SECONDS)
                waiting &= set(self._outbox.pending())
        except OSError as exc:
            raise IndexUnavailableError(BACKEND, f"cannot read outbox: {exc}") from exc
        self._reload()

    def _drain_if_possible(self) -> bool:
        with self._lock:
            if not self._take_writer():
                return False
            try:
                self._drain()
            finally:
                if self._thread is None and not self._keep_writer and self._writer is not None:
                    self._release_writer()
            return True

    def _reload(self) -> None:
        try:
            self._index.reload()
        except ValueError as exc:
            raise IndexUnavailableError(BACKEND, f"reload failed: {exc}") from exc

    # ------------------------------------------------------------------ reads
    def search(self, query: Query) -> Page:
        """Run ``query`` against the latest commit.

        Raises:
            InvalidQueryError: limit outside 1..100, bad cursor, unknown facet or sort.
            IndexUnavailableError: tantivy failed, or this index is closed.
        """
        check_query(query)
        self._check_open()
        self._reload()
        try:
            return _tantivy_query.run(self._index, self._index.searcher(), query)
        except ValueError as exc:
            raise IndexUnavailableError(BACKEND, f"search failed: {exc}") from exc

    def get(self, aip_id: str) -> Hit | None:
        """The indexed entry for one package, if any.

        Raises:
            IndexUnavailableError: tantivy failed, or this index is closed.
        """
        self._check_open()
        self._reload()
        try:
            searcher = self._index.searcher()
            found = searcher.search(tantivy.Query.term_query(self._schema, "aip_id", aip_id), 1)
            return hit_from_stored(searcher.doc(found.hits[0][1]), 0.0) if found.hits else None
        except ValueError as exc:
            raise IndexUnavailableError(BACKEND, f"get failed: {exc}") from exc

    def retention_due(self, before: date, *, after: str | None = None, limit: int = 1000) -> IdPage:
        """See :meth:`search.base.Index.retention_due`.

        Raises:
            InvalidQueryError: bad ``limit`` or ``after``.
            IndexUnavailableError: tantivy failed, or this index is closed.
        """
        check_retention(limit, after)
        self._check_open()
        self._reload()
        try:
            return _tantivy_query.retention_page(
                self._index, self._index.searcher(), before, after, limit
            )
        except ValueError as exc:
            raise IndexUnavailableError(BACKEND, f"retention query failed: {exc}") from exc

    def digests(self) -> Iterator[tuple[str, str]]:
        """``(aip_id, digest)`` of every entry, ascending, from one snapshot.

        Raises:
            IndexUnavailableError: (when iterated) tantivy failed, or this index is closed.
        """
        self._check_open()
        self._reload()
        return self._iter_digests(self._index.searcher())

    def _iter_digests(self, searcher: tantivy.Searcher) -> Iterator[tuple[str, str]]:
        for aip_id, addr in self._iter_id_addresses(searcher):
            try:
                digest = searcher.doc(addr).get_first("digest")
            except ValueError as exc:
                raise IndexUnavailableError(BACKEND, f"reading digests failed: {exc}") from exc
            yield aip_id, str(digest or "")

    def ids(self) -> Iterator[str]:
        """Every indexed ``aip_id`` in ascending order, from one snapshot.

        Raises:
            IndexUnavailableError: (when iterated) tantivy failed, or this index is closed.
        """
        self._check_open()
        self._reload()
        return self._iter_ids(self._index.searcher())

    def _iter_ids(self, searcher: tantivy.Searcher) -> Iterator[str]:
        for aip_id, _ in self._iter_id_addresses(searcher):
            yield aip_id

    def _iter_id_addresses(
        self, searcher: tantivy.Searcher
    ) -> Iterator[tuple[str, tantivy.DocAddress]]:
        last: str | None = None
        while True:
            try:
                chunk = _tantivy_query.id_ordered(
                    self._index, searcher, tantivy.Query.all_query(), last, _ID_CHUNK
                )
            except ValueError as exc:
                raise IndexUnavailableError(BACKEND, f"listing ids failed: {exc}") from exc
            yield from chunk
            if len(chunk) < _ID_CHUNK:
                return
            last = chunk[-1][0]

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop the indexer thread, apply what is pending if this process can, release the
        writer. Idempotent. Never raises for a failed last drain (it is logged; the entries
        stay in the outbox for the next indexer)."""
        if self._closed:
            return
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        with self._lock:
            self._thread = None
            try:
                self._drain_if_possible()
            except IndexUnavailableError:
                log.warning("search index close: last drain failed", exc_info=True)
            if self._writer is not None:
                self._release_writer()
            self._closed = True

    def __enter__(self) -> TantivyIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise IndexUnavailableError(BACKEND, "index is closed")
