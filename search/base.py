"""The Index protocol: a rebuildable projection of the archive for search.

The index is never the truth: storage is. Updates submitted here must become visible to
every process within about a second; decisions that hand out or destroy data are checked
against storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Protocol

from search.model import Hit, IdPage, IndexDocument, Page, Query


class Index(Protocol):
    """Implementations: ``TantivyIndex`` (embedded) and ``OpenSearchIndex``."""

    name: str

    def submit(self, documents: Sequence[IndexDocument]) -> None:
        """Durably accept upserts (keyed by ``aip_id``); they become searchable shortly.

        Raises:
            IndexUnavailableError.
        """
        ...

    def load(self, documents: Iterable[IndexDocument]) -> int:
        """Bulk upserts for rebuilds, durable on return; returns the count. May bypass the
        per-update path (the tantivy outbox) when the backend can write directly.

        Raises:
            ValueError: a malformed ``aip_id``.
            IndexUnavailableError.
        """
        ...

    def remove(self, aip_ids: Sequence[str]) -> None:
        """Durably accept removals. Raises: IndexUnavailableError."""
        ...

    def refresh(self) -> None:
        """Apply pending updates now if this process can, and make them visible to it."""
        ...

    def search(self, query: Query) -> Page:
        """Raises: InvalidQueryError, IndexUnavailableError."""
        ...

    def get(self, aip_id: str) -> Hit | None:
        """The indexed entry for one package, if any."""
        ...

    def retention_due(self, before: date, *, after: str | None = None, limit: int = 1000) -> IdPage:
        """Ids whose retention ends strictly before ``before``, not on hold, not disposed,
        ascending, strictly greater than ``after``; at most ``limit`` (1..10,000) per page.

        Documents without a retention end (permanent) are never due.

        Raises:
            InvalidQueryError: ``limit`` out of range or ``after`` malformed.
            IndexUnavailableError.
        """
        ...

    def ids(self) -> Iterable[str]:
        """Every indexed aip_id, ascending (for reconcile)."""
        ...

    def digests(self) -> Iterable[tuple[str, str]]:
        """``(aip_id, digest)`` of every indexed entry, ascending by id, where ``digest`` is
        :func:`search.projection.document_digest` of what was indexed (for reconcile)."""
        ...

    def clear(self) -> None:
        """Remove every document (before a full rebuild)."""
        ...

    def close(self) -> None: ...


def stream_retention_due(index: Index, before: date, *, page_size: int = 1000) -> Iterator[IdPage]:
    """Every page of :meth:`Index.retention_due` for ``before``, in order.

    Keyset paging on the id: documents becoming due (or not) while the stream runs are
    seen or not depending on which side of the position they fall; none is returned twice.
    """
    after: str | None = None
    while True:
        page = index.retention_due(before, after=after, limit=page_size)
        if page.ids:
            yield page
        if page.next_after is None:
            return
        after = page.next_after
