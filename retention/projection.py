"""What storage says about holds and retention ends, read for decisions and for the index.

Holds and retention changes are storage records next to the packages (see
:mod:`retention.layout`), not edits of the packages; the search projection must show them.
:class:`RetentionProjection` is the :class:`search.reindex.PackageSource` that does: it
reads a document's index record from the store and overlays its current retention end and
hold flag.

Reindex and reconcile project every document; reading two listings per document would be
two extra storage round trips each. :meth:`RetentionProjection.snapshot` therefore reads
the markers once (one listing of ``held/`` and one of ``retention/``, whose keys carry the
end) and projects from memory. A hold or recompute that lands while a snapshot-based run is
going is pushed to the index by its own writer; reconcile repairs any entry a run
overwrote with an older snapshot.

Invariants: only reads storage; ``holds_in_force`` counts a hold whose placement is still
being applied (``holds-open/``) for the documents it names, so a crash mid-placement never
leaves a named document unprotected in the eyes of disposal.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from archive.errors import ObjectNotFoundError
from archive.model import IndexRecord
from archive.storage.base import Storage
from archive.store import AipStore
from retention import layout
from search.base import Index
from search.projection import OwnerKeyer, project_record

__all__ = [
    "IndexUpdater",
    "RetentionOverlay",
    "RetentionProjection",
    "holds_in_force",
    "holds_in_force_many",
    "latest_record_key",
    "load_overlay",
    "read_json",
]


def read_json(storage: Storage, key: str) -> dict[str, Any]:
    """Raises: ObjectNotFoundError, StorageUnavailableError, ValueError (not JSON)."""
    with storage.open(key) as stream:
        value = json.loads(stream.read(16 * 1024 * 1024))
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not a JSON object")
    return value


def latest_record_key(storage: Storage, document_id: str) -> str | None:
    """The key of the document's newest retention record, or None when it has none."""
    last = None
    for key in storage.keys(layout.records_prefix(document_id)):
        if layout.parse_record_key(key) is not None:
            last = key
    return last


def _pending_placements(storage: Storage) -> dict[str, frozenset[str]]:
    """Hold id -> document ids of every placement still being applied."""
    found: dict[str, frozenset[str]] = {}
    for key in storage.keys(layout.OPEN_PREFIX):
        hold_id = key.rsplit("/", 1)[1]
        try:
            placed = read_json(storage, layout.hold_key(hold_id, "placed.json"))
        except ObjectNotFoundError:
            continue  # the placement never got its record: it was not placed
        if storage.exists(layout.hold_key(hold_id, "lifted.json")):
            continue  # a lifting in progress: the markers still tell who is held
        found[hold_id] = frozenset(placed.get("document_ids", ()))
    return found


def holds_in_force(storage: Storage, document_id: str) -> tuple[str, ...]:
    """Ids of the legal holds in force on the document, sorted.

    Raises:
        StorageUnavailableError.
    """
    return holds_in_force_many(storage, [document_id])[document_id]


def holds_in_force_many(
    storage: Storage,
    document_ids: Sequence[str],
    *,
    mapper: Callable[
        [Callable[[str], frozenset[str]], Sequence[str]], Iterable[frozenset[str]]
    ] = map,
) -> dict[str, tuple[str, ...]]:
    """:func:`holds_in_force` of many documents (disposal's last look over a batch): the
    open placements are read once for all of them, then each document's markers (through
    ``mapper``, e.g. a thread pool's ``map``: a listing is a round trip on S3).

    The placements are read before the markers: a placement removes its open marker only
    after it wrote its markers, so one that finishes in between is seen in one of the two.

    Raises:
        StorageUnavailableError.
    """
    pending = _pending_placements(storage)

    def markers(document_id: str) -> frozenset[str]:
        return frozenset(k.rsplit("/", 1)[1] for k in storage.keys(layout.held_prefix(document_id)))

    found: dict[str, tuple[str, ...]] = {}
    for document_id, held in zip(document_ids, mapper(markers, document_ids), strict=True):
        placing = {h for h, ids in pending.items() if document_id in ids}
        found[document_id] = tuple(sorted(held | placing))
    return found


@dataclass(frozen=True)
class RetentionOverlay:
    """Every document's hold flag and recorded retention end, read in two listings."""

    held: frozenset[str]
    retention: Mapping[str, date | None]
    """Document id -> end of its newest retention record (absent: none recorded)."""

    def apply(self, record: IndexRecord) -> IndexRecord:
        doc = record.document_id
        meta = record.metadata
        if doc in self.retention and self.retention[doc] != meta.retention_until:
            meta = dataclasses.replace(meta, retention_until=self.retention[doc])
        return dataclasses.replace(record, metadata=meta, on_hold=doc in self.held)


def load_overlay(storage: Storage) -> RetentionOverlay:
    """Raises: StorageUnavailableError."""
    held = {k.split("/")[1] for k in storage.keys(layout.HELD_PREFIX) if k.count("/") == 2}
    for ids in _pending_placements(storage).values():
        held |= ids
    retention: dict[str, date | None] = {}
    for key in storage.keys(layout.RECORDS_PREFIX):
        parsed = layout.parse_record_key(key)
        if parsed is not None:  # keys come in order: the last one per document wins
            retention[parsed[0]] = parsed[2]
    return RetentionOverlay(frozenset(held), retention)


class _Snapshot:
    def __init__(self, store: AipStore, overlay: RetentionOverlay) -> None:
        self._store = store
        self._overlay = overlay

    def document_ids(self) -> Iterator[str]:
        return self._store.document_ids()

    def index_record(self, document_id: str) -> IndexRecord:
        return self._overlay.apply(self._store.index_record(document_id))


class RetentionProjection:
    """A :class:`search.reindex.PackageSource` whose records carry holds and recorded ends."""

    def __init__(self, store: AipStore, storage: Storage) -> None:
        self._store = store
        self._storage = storage

    def document_ids(self) -> Iterator[str]:
        return self._store.document_ids()

    def index_record(self, document_id: str) -> IndexRecord:
        """One document, its markers read now (two listings).

        Raises:
            As :meth:`archive.store.AipStore.index_record`.
        """
        record = self._store.index_record(document_id)
        key = latest_record_key(self._storage, document_id)
        retention = {}
        if key is not None:
            parsed = layout.parse_record_key(key)
            assert parsed is not None
            retention[document_id] = parsed[2]
        held = frozenset([document_id] if holds_in_force(self._storage, document_id) else [])
        return RetentionOverlay(held, retention).apply(record)

    def snapshot(self) -> _Snapshot:
        """A source for a whole run (reindex, reconcile): the markers are read once, now."""
        return _Snapshot(self._store, load_overlay(self._storage))


class IndexUpdater:
    """Pushes documents whose holds or retention changed to the index (after storage)."""

    def __init__(self, projection: RetentionProjection, index: Index, keyer: OwnerKeyer) -> None:
        self._projection = projection
        self._index = index
        self._keyer = keyer

    def update(self, document_ids: list[str]) -> None:
        """Raises: IndexUnavailableError; archive errors of an unreadable package."""
        if document_ids:
            records = [self._projection.index_record(d) for d in document_ids]
            self._index.submit([project_record(r, self._keyer) for r in records])
