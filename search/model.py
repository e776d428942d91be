"""The query model shared by every index backend and its callers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal


@dataclass(frozen=True)
class IndexDocument:
    """The searchable projection of one AIP. Never holds a raw owner number."""

    aip_id: str
    owner_key: str
    """HMAC-SHA256(secret, owner_id), hex; see :mod:`search.projection`."""
    agency_id: str
    document_type: str
    title: str
    text: str
    issued_on: date
    ingested_at: datetime
    agency_ref: str
    retention_until: date | None = None
    """End of the retention period; ``None``: kept permanently."""
    on_hold: bool = False
    """Under a legal hold: never due for disposal while set."""
    disposed: bool = False
    """Disposal has been decided/carried out (the entry stays findable for the audit
    trail until it is removed); never due again."""


@dataclass(frozen=True)
class Query:
    """One search. Every filter is optional; callers (the API) decide which are mandatory."""

    text: str | None = None
    """Free Dutch text; matched with stemming and diacritic folding on title and text."""
    owner_key: str | None = None
    agency_id: str | None = None
    document_type: str | None = None
    agency_ref: str | None = None
    issued_from: date | None = None
    issued_to: date | None = None
    """Inclusive bounds on the issue date."""
    sort: Literal["newest", "relevance"] = "newest"
    """``newest``: ingested_at descending, then aip_id; ``relevance``: score, then newest."""
    limit: int = 20
    cursor: str | None = None
    """Opaque token from a previous :class:`Page` to fetch the next page."""
    facets: tuple[Literal["agency_id", "document_type", "year"], ...] = ()


@dataclass(frozen=True)
class Hit:
    aip_id: str
    title: str
    agency_id: str
    document_type: str
    issued_on: date
    ingested_at: datetime
    score: float = 0.0


@dataclass(frozen=True)
class Page:
    hits: tuple[Hit, ...]
    total: int
    """Number of documents matching the query (all pages)."""
    next_cursor: str | None = None
    facets: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class IdPage:
    """One page of the retention query: ids in ascending order."""

    ids: tuple[str, ...]
    next_after: str | None = None
    """Pass as ``after`` to get the next page; ``None`` when this was the last one."""
