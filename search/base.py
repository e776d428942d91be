"""The Index protocol: a rebuildable projection of the archive for search.

The index is never the truth: storage is. Updates submitted here must become visible to
every process within about a second; decisions that hand out or destroy data are checked
against storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from search.model import Hit, IndexDocument, Page, Query


class Index(Protocol):
    """Implementations: ``TantivyIndex`` (embedded), later ``OpenSearchIndex``."""

    name: str

    def submit(self, documents: Sequence[IndexDocument]) -> None:
        """Durably accept upserts (keyed by ``aip_id``); they become searchable shortly.

        Raises:
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

    def ids(self) -> Iterable[str]:
        """Every indexed aip_id (for reconcile)."""
        ...

    def clear(self) -> None:
        """Remove every document (before a full rebuild)."""
        ...

    def close(self) -> None: ...
