"""Rebuild the search index from storage alone.

Invariants:
    * Storage is the truth: every committed package is (re)submitted, and every indexed id
      that storage does not hold is removed. Nothing is read from the index but its ids.
    * The index stays searchable during the rebuild (upserts, no ``clear`` first).
    * A package committed while the rebuild runs is never removed by it: the stale ids are
      those indexed *and* absent from a second storage listing taken after the index was
      read (ingest commits to storage before it submits to the index).
    * Legal holds are not part of the package manifest yet, so documents are projected with
      ``on_hold=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from archive.model import AipManifest
from search.base import Index
from search.projection import OwnerKeyer, project


class PackageSource(Protocol):
    """What reindex needs from ``archive.store.AipStore``."""

    def aip_ids(self) -> Iterator[str]:
        """Ids of the committed packages."""
        ...

    def manifest(self, aip_id: str) -> AipManifest: ...

    def read_text(self, aip_id: str) -> str:
        """The extracted text stored in the package."""
        ...


@dataclass(frozen=True)
class ReindexStats:
    indexed: int
    """Packages (re)submitted to the index."""
    removed: int
    """Indexed ids that storage no longer holds."""


def reindex(
    store: PackageSource,
    index: Index,
    keyer: OwnerKeyer,
    *,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 500,
) -> ReindexStats:
    """Submit every committed package to ``index`` and remove ids storage lacks.

    ``progress`` is called with the running count of submitted packages after each batch.
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
    seen: set[str] = set()
    batch = []
    for aip_id in store.aip_ids():
        batch.append(project(store.manifest(aip_id), store.read_text(aip_id), keyer))
        seen.add(aip_id)
        if len(batch) >= batch_size:
            index.submit(batch)
            batch = []
            if progress is not None:
                progress(len(seen))
    if batch:
        index.submit(batch)
        if progress is not None:
            progress(len(seen))
    index.refresh()
    candidates = set(index.ids()) - seen
    stale = sorted(candidates - set(store.aip_ids())) if candidates else []
    for start in range(0, len(stale), batch_size):
        index.remove(stale[start : start + batch_size])
    if stale:
        index.refresh()
    return ReindexStats(indexed=len(seen), removed=len(stale))
