"""Translate a :class:`~search.model.Query` into tantivy searches and a :class:`Page`.

Invariants:
    * Filters are ANDed and never score (constant score 0); only the text clause ranks.
    * Text is analysed with :func:`search.analysis.analyze`, exactly as at indexing; every
      term must occur in ``title_nl`` (boost 2) or ``text_nl``.
    * ``newest`` order is (ingested_at desc, aip_id asc), a total order, paged by keyset (see
      :mod:`search._paging`). tantivy sorts on one fast field only, so a page is read as
      the top ``limit + 1`` by ``ingested_us``; the documents sharing the last timestamp
      of the page are then re-read ordered by ``aip_id``.
    * ``relevance`` order is (score desc, ingested_at desc, aip_id asc), paged by offset.
    * One searcher (one index snapshot) answers the hits, the total and the facets.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import tantivy

from search._paging import (
    MAX_RELEVANCE_WINDOW,
    NewestCursor,
    RelevanceCursor,
    decode_cursor,
    effective_sort,
    encode_cursor,
)
from search._tantivy_schema import hit_from_stored, micros, midnight
from search.analysis import analyze
from search.model import Hit, Page, Query

FACET_FIELDS = {"agency_id": "agency_id", "document_type": "document_type", "year": "year"}
FACET_SIZE = 1000
"""Buckets returned per facet (more distinct values than this are cut, largest kept)."""
_RELEVANCE_FETCH_CAP = 4 * MAX_RELEVANCE_WINDOW
"""Beyond this many equal scores, ties at a page edge are ordered by tantivy, not by time."""

Must = tantivy.Occur.Must
Should = tantivy.Occur.Should


def _text_clause(schema: tantivy.Schema, text: str) -> tantivy.Query:
    terms = list(dict.fromkeys(analyze(text)))
    if not terms:
        return tantivy.Query.empty_query()
    clauses = []
    for term in terms:
        title = tantivy.Query.boost_query(tantivy.Query.term_query(schema, "title_nl", term), 2.0)
        body = tantivy.Query.term_query(schema, "text_nl", term)
        clauses.append((Must, tantivy.Query.boolean_query([(Should, title), (Should, body)])))
    return tantivy.Query.boolean_query(clauses)


def base_query(schema: tantivy.Schema, query: Query) -> tantivy.Query:
    """Every filter of ``query`` plus its text clause (the query of all pages)."""
    filters: list[tantivy.Query] = []
    for field in ("owner_key", "agency_id", "document_type", "agency_ref"):
        value = getattr(query, field)
        if value is not None:
            filters.append(tantivy.Query.term_query(schema, field, value))
    if query.issued_from is not None or query.issued_to is not None:
        filters.append(
            tantivy.Query.range_query(
                schema,
                "issued_on",
                tantivy.FieldType.Date,
                midnight(query.issued_from) if query.issued_from else tantivy.MIN_DATETIME,
                midnight(query.issued_to) if query.issued_to else tantivy.MAX_DATETIME,
            )
        )
    clauses = [(Must, tantivy.Query.const_score_query(f, 0.0)) for f in filters]
    if query.text is not None and query.text.strip():
        clauses.append((Must, _text_clause(schema, query.text)))
    if not clauses:
        return tantivy.Query.all_query()
    return tantivy.Query.boolean_query(clauses)


def _after(index: tantivy.Index, schema: tantivy.Schema, cursor: NewestCursor) -> tantivy.Query:
    """Documents strictly after ``cursor`` in (ingested_at desc, aip_id asc) order."""
    older = tantivy.Query.range_query(
        schema,
        "ingested_us",
        tantivy.FieldType.Integer,
        None,
        cursor.ingested_us,
        include_upper=False,
    )
    # tantivy-py has no string range constructor; its query parser builds one. The id was
    # checked against AIP_ID_PATTERN, whose alphabet the parser takes literally.
    same_time_later_id = tantivy.Query.boolean_query(
        [
            (Must, _at(schema, cursor.ingested_us)),
            (Must, index.parse_query(f"aip_id:>{cursor.aip_id}")),
        ]
    )
    return tantivy.Query.boolean_query([(Should, older), (Should, same_time_later_id)])


def _at(schema: tantivy.Schema, micros: int) -> tantivy.Query:
    return tantivy.Query.range_query(
        schema, "ingested_us", tantivy.FieldType.Integer, micros, micros
    )


def _facets(
    searcher: tantivy.Searcher, base: tantivy.Query, query: Query
) -> dict[str, dict[str, int]]:
    if not query.facets:
        return {}
    request = {
        name: {
            "terms": {"field": FACET_FIELDS[name], "size": FACET_SIZE, "segment_size": FACET_SIZE}
        }
        for name in dict.fromkeys(query.facets)
    }
    result: dict[str, Any] = searcher.aggregate(base, request)
    facets: dict[str, dict[str, int]] = {}
    for name in request:
        buckets = result.get(name, {}).get("buckets", [])
        pairs = [(_bucket_key(b["key"]), int(b["doc_count"])) for b in buckets]
        facets[name] = dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))
    return facets


def _bucket_key(key: object) -> str:
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key)


def _newest_page(
    index: tantivy.Index, searcher: tantivy.Searcher, base: tantivy.Query, query: Query
) -> tuple[list[Hit], str | None]:
    schema = index.schema
    cursor = decode_cursor(query)
    if isinstance(cursor, NewestCursor):
        page_q = tantivy.Query.boolean_query([(Must, base), (Must, _after(index, schema, cursor))])
    else:
        page_q = base
    limit = query.limit
    found = searcher.search(page_q, limit + 1, count=False, order_by_field="ingested_us")
    rows = [(int(ts), addr) for ts, addr in found.hits]
    if len(rows) <= limit:
        hits = sorted((_hit(searcher, a) for _, a in rows), key=_newest_key)
        return hits, None
    boundary = rows[limit - 1][0]
    head = sorted((_hit(searcher, a) for ts, a in rows if ts > boundary), key=_newest_key)
    tie_q = tantivy.Query.boolean_query([(Must, page_q), (Must, _at(schema, boundary))])
    ties = searcher.search(
        tie_q, limit - len(head), count=False, order_by_field="aip_id", order=tantivy.Order.Asc
    )
    hits = head + [_hit(searcher, a) for _, a in ties.hits]
    last = hits[-1]
    next_cursor = NewestCursor(ingested_us=boundary, aip_id=last.aip_id)
    return hits, encode_cursor(query, next_cursor)


def _scored_window(
    searcher: tantivy.Searcher, base: tantivy.Query, need: int
) -> list[tuple[float, tantivy.DocAddress]]:
    """The top hits by score, enough of them to hold every hit scoring at least as high as
    the ``need``-th one (so ties at the page edge can be ordered by time and id)."""
    window = need + 32
    while True:
        hits = [(float(s), a) for s, a in searcher.search(base, window, count=False).hits]
        if len(hits) < window or window >= _RELEVANCE_FETCH_CAP or hits[need - 1][0] > hits[-1][0]:
            return hits
        window = min(window * 4, _RELEVANCE_FETCH_CAP)


def _relevance_page(
    searcher: tantivy.Searcher, base: tantivy.Query, query: Query
) -> tuple[list[Hit], str | None]:
    cursor = decode_cursor(query)
    offset = cursor.offset if isinstance(cursor, RelevanceCursor) else 0
    end = offset + query.limit
    hits = _scored_window(searcher, base, end + 1)
    stamps = searcher.fast_field_values("ingested_us", [a for _, a in hits]) if hits else []
    rows = [(score, int(ts or 0), addr) for (score, addr), ts in zip(hits, stamps, strict=True)]
    # The aip_id tie-break needs the stored document: read it only where (score, time) ties.
    shared = Counter((score, ts) for score, ts, _ in rows)

    def order(row: tuple[float, int, tantivy.DocAddress]) -> tuple[float, int, str]:
        score, ts, addr = row
        tie = str(searcher.doc(addr).get_first("aip_id")) if shared[(score, ts)] > 1 else ""
        return (-score, -ts, tie)

    ranked = sorted(rows, key=order)
    page = [_hit(searcher, addr, score) for score, _, addr in ranked[offset:end]]
    more = len(ranked) > end and end < MAX_RELEVANCE_WINDOW
    return page, encode_cursor(query, RelevanceCursor(end)) if more else None


def _hit(searcher: tantivy.Searcher, addr: tantivy.DocAddress, score: float = 0.0) -> Hit:
    return hit_from_stored(searcher.doc(addr), score)


def _newest_key(hit: Hit) -> tuple[int, str]:
    return (-micros(hit.ingested_at), hit.aip_id)


def run(index: tantivy.Index, searcher: tantivy.Searcher, query: Query) -> Page:
    """Answer ``query`` from one searcher snapshot.

    Raises:
        InvalidQueryError: bad cursor.
        ValueError: tantivy refused the query or failed; the caller maps it.
    """
    base = base_query(index.schema, query)
    if effective_sort(query) == "newest":
        hits, token = _newest_page(index, searcher, base, query)
    else:
        hits, token = _relevance_page(searcher, base, query)
    total = int(searcher.search(base, 1, count=True).count)  # type: ignore[attr-defined]
    return Page(
        hits=tuple(hits), total=total, next_cursor=token, facets=_facets(searcher, base, query)
    )
