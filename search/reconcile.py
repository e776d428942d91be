"""Prove index == storage, range by range, and repair the drift.

Both sides are reduced to ``(aip_id, digest)`` pairs (one per document: its first package's
id, projected from its newest version; see :mod:`search.reindex`), where ``digest`` is
:func:`search.projection.document_digest` of the index document: the index stores it with
every entry, storage gives it by projecting the package again. Ids are grouped into ranges
by their first ``prefix_chars`` characters; per range both sides give a count and a
SHA-256 over the sorted pairs. Equal ranges are proven equal; for a range that differs the
pairs are compared one by one and the differences repaired:

* ``missing``: committed in storage, absent from the index → submitted;
* ``corrupt``: indexed with another digest (an older projection, a lost or damaged update)
  → submitted again (upsert);
* ``stale``: indexed but not committed in storage → removed, after a second storage
  listing confirms it (ingest commits before it indexes, so a package committed during the
  run is never removed).

After repairing, the index is refreshed and the drifted ranges are checked again
(``verified``).

Invariants:
    * Reads storage and the index only; writes only to the index (storage is the truth).
    * Per-package digests are held in memory per run: about 100 bytes per package.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from search.base import Index
from search.projection import OwnerKeyer, document_digest
from search.reindex import PackageSource, projected


@dataclass(frozen=True)
class RangeSummary:
    prefix: str
    count: int
    digest: str


@dataclass(frozen=True)
class ReconcileReport:
    ranges: int
    """Id ranges compared."""
    drifted_ranges: tuple[str, ...]
    missing: tuple[str, ...]
    corrupt: tuple[str, ...]
    stale: tuple[str, ...]
    verified: bool
    """True when, after repair (if any), every range matched."""

    @property
    def in_sync(self) -> bool:
        """True when nothing needed repair."""
        return not (self.missing or self.corrupt or self.stale)


def summarize(pairs: Iterable[tuple[str, str]], prefix_chars: int) -> dict[str, RangeSummary]:
    """Count and digest of ``(aip_id, digest)`` pairs per id range."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for aip_id, digest in pairs:
        groups[aip_id[:prefix_chars]].append((aip_id, digest))
    out = {}
    for prefix, rows in groups.items():
        h = hashlib.sha256()
        for aip_id, digest in sorted(rows):
            h.update(f"{aip_id}\t{digest}\n".encode())
        out[prefix] = RangeSummary(prefix, len(rows), h.hexdigest())
    return out


def storage_digests(
    store: PackageSource, keyer: OwnerKeyer, *, read_workers: int = 1
) -> dict[str, str]:
    """``document id → digest`` of every committed document, as the index should hold it."""
    ids = sorted(store.document_ids())
    docs = projected(store, keyer, ids, read_workers=read_workers)
    return {d.aip_id: document_digest(d) for d in docs}


def reconcile_index(
    store: PackageSource,
    index: Index,
    keyer: OwnerKeyer,
    *,
    repair: bool = True,
    prefix_chars: int = 2,
    batch_size: int = 500,
    read_workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> ReconcileReport:
    """Compare index and storage per id range; with ``repair``, fix and verify.

    Raises:
        IndexUnavailableError: the index cannot be read or updated.
        Whatever ``store`` raises for an unreadable package.
    """
    index.refresh()
    truth = storage_digests(store, keyer, read_workers=read_workers)
    if progress is not None:
        progress(f"storage: {len(truth)} packages projected")
    indexed = dict(index.digests())
    want = summarize(truth.items(), prefix_chars)
    have = summarize(indexed.items(), prefix_chars)
    drifted = sorted(p for p in want.keys() | have.keys() if want.get(p) != have.get(p))
    if progress is not None:
        progress(f"{len(want.keys() | have.keys())} ranges, {len(drifted)} differ")
    missing: list[str] = []
    corrupt: list[str] = []
    stale: list[str] = []
    drifted_set = set(drifted)
    for aip_id in sorted(truth.keys() | indexed.keys()):
        if aip_id[:prefix_chars] not in drifted_set:
            continue
        if aip_id not in indexed:
            missing.append(aip_id)
        elif aip_id not in truth:
            stale.append(aip_id)
        elif indexed[aip_id] != truth[aip_id]:
            corrupt.append(aip_id)
    if stale:  # committed since we listed? then it is not stale
        committed = set(store.document_ids())
        stale = [a for a in stale if a not in committed]
    verified = not (missing or corrupt or stale)
    if repair and not verified:
        resubmit = sorted(missing + corrupt)
        for start in range(0, len(resubmit), batch_size):
            chunk = resubmit[start : start + batch_size]
            index.submit(list(projected(store, keyer, chunk, read_workers=read_workers)))
        for start in range(0, len(stale), batch_size):
            index.remove(stale[start : start + batch_size])
        index.refresh()
        again = summarize(
            ((a, d) for a, d in index.digests() if a[:prefix_chars] in drifted_set), prefix_chars
        )
        truth_now = summarize(
            ((a, d) for a, d in truth.items() if a[:prefix_chars] in drifted_set), prefix_chars
        )
        verified = again == truth_now
    return ReconcileReport(
        ranges=len(want.keys() | have.keys()),
        drifted_ranges=tuple(drifted),
        missing=tuple(missing),
        corrupt=tuple(corrupt),
        stale=tuple(stale),
        verified=verified,
    )
