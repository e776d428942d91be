"""Query validation and the opaque paging cursor, shared by every index backend.

A cursor is URL-safe base64 of a small JSON object. It carries the sort mode it was made
for, a fingerprint of the query's filters and text, and the position:

* ``newest``: the sort key of the last hit returned, ``(ingested_at µs, aip_id)``. The next
  page holds the hits strictly after that key in (ingested_at desc, aip_id asc) order.
  Documents added later are newer than every page already served, so they never shift or
  duplicate later pages (keyset paging; OpenSearch's ``search_after`` takes the same key).
* ``relevance``: an offset. Scores change when documents are added, so relevance pages are
  stable only while the index is; paging stops at :data:`MAX_RELEVANCE_WINDOW` hits.

Invariants:
    * Cursors are not secret and not signed: they hold no owner data, only a hash of the
      query, and every page is still filtered by the caller's own query (a forged cursor can
      only skip within results the caller may already see).
    * Anything wrong with a cursor (not base64, not our JSON, another query or sort mode)
      raises :class:`~search.errors.InvalidQueryError`, never a foreign exception.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from search.errors import InvalidQueryError
from search.model import Query

MIN_LIMIT = 1
EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2200, 12, 31)
MAX_LIMIT = 100
MAX_RELEVANCE_WINDOW = 10_000
"""Relevance paging is offset-based; deeper pages are refused (as OpenSearch's
``index.max_result_window``)."""

AIP_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@=+-]{0,199}$")
"""Ids the index accepts: the storage key segment alphabet (``archive.storage.base``)."""

_CURSOR_VERSION = 1


@dataclass(frozen=True)
class NewestCursor:
    ingested_us: int
    aip_id: str


@dataclass(frozen=True)
class RelevanceCursor:
    offset: int


Cursor = NewestCursor | RelevanceCursor


def check_aip_ids(aip_ids: Sequence[str]) -> None:
    """Raises: ValueError for an id outside :data:`AIP_ID_PATTERN`."""
    for aip_id in aip_ids:
        if not isinstance(aip_id, str) or not AIP_ID_PATTERN.match(aip_id):
            raise ValueError(f"not an AIP id the index accepts: {aip_id!r}")


def effective_sort(query: Query) -> str:
    """``relevance`` without text ranks every hit equally, so it pages as ``newest``."""
    if query.sort == "relevance" and query.text is not None and query.text.strip():
        return "relevance"
    return "newest"


def check_query(query: Query) -> None:
    """Validate the parts of ``query`` every backend checks the same way.

    Raises:
        InvalidQueryError: limit outside 1..100, unknown sort or facet, reversed date range.
    """
    if isinstance(query.limit, bool) or not isinstance(query.limit, int):
        raise InvalidQueryError(f"limit must be an integer, got {query.limit!r}")
    if not MIN_LIMIT <= query.limit <= MAX_LIMIT:
        raise InvalidQueryError(f"limit must be between {MIN_LIMIT} and {MAX_LIMIT}")
    if query.sort not in ("newest", "relevance"):
        raise InvalidQueryError(f"unknown sort {query.sort!r}")
    for facet in query.facets:
        if facet not in ("agency_id", "document_type", "year"):
            raise InvalidQueryError(f"unknown facet {facet!r}")
    if query.issued_from and query.issued_to and query.issued_from > query.issued_to:
        raise InvalidQueryError("issued_from is after issued_to")
    for bound in (query.issued_from, query.issued_to):
        # Engines store dates in bounded ranges (tantivy fails on, say, the year 1316):
        # refuse what no archived document can have instead of failing as "unavailable".
        if bound is not None and not EARLIEST_DATE <= bound <= LATEST_DATE:
            raise InvalidQueryError(f"dates must lie between {EARLIEST_DATE} and {LATEST_DATE}")


MAX_RETENTION_PAGE = 10_000


def check_retention(limit: int, after: str | None) -> None:
    """Validate the paging arguments of the retention query.

    Raises:
        InvalidQueryError: ``limit`` outside 1..10,000 or ``after`` not an AIP id.
    """
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_RETENTION_PAGE
    ):
        raise InvalidQueryError(f"retention page size must be between 1 and {MAX_RETENTION_PAGE}")
    if after is not None and (not isinstance(after, str) or not AIP_ID_PATTERN.match(after)):
        raise InvalidQueryError("malformed retention position")


def _fingerprint(query: Query) -> str:
    neutral = replace(query, cursor=None, limit=MIN_LIMIT, facets=())
    return hashlib.sha256(repr(neutral).encode()).hexdigest()[:16]


def encode_cursor(query: Query, cursor: Cursor) -> str:
    """The opaque token for the page after ``cursor`` of ``query``."""
    body: dict[str, object] = {"v": _CURSOR_VERSION, "q": _fingerprint(query)}
    if isinstance(cursor, NewestCursor):
        body |= {"s": "newest", "t": cursor.ingested_us, "i": cursor.aip_id}
    else:
        body |= {"s": "relevance", "o": cursor.offset}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: Query) -> Cursor | None:
    """The position encoded in ``query.cursor``, or None for the first page.

    Raises:
        InvalidQueryError: the token is malformed or belongs to another query or sort.
    """
    token = query.cursor
    if token is None:
        return None
    try:
        if not isinstance(token, str) or len(token) > 1024:
            raise ValueError("not a short string")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("v") != _CURSOR_VERSION:
            raise ValueError("unknown cursor version")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidQueryError("malformed cursor") from exc
    if body.get("q") != _fingerprint(query):
        raise InvalidQueryError("cursor belongs to a different query")
    mode = body.get("s")
    if mode != effective_sort(query):
        raise InvalidQueryError("cursor belongs to a different sort order")
    if mode == "newest":
        ts, aip_id = body.get("t"), body.get("i")
        if (
            isinstance(ts, int)
            and not isinstance(ts, bool)
            and isinstance(aip_id, str)
            and AIP_ID_PATTERN.match(aip_id)
        ):
            return NewestCursor(ts, aip_id)
    else:
        offset = body.get("o")
        is_int = isinstance(offset, int) and not isinstance(offset, bool)
        if is_int and isinstance(offset, int) and 0 < offset <= MAX_RELEVANCE_WINDOW:
            return RelevanceCursor(offset)
    raise InvalidQueryError("malformed cursor")
