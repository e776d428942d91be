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

import heapq
from collections import Counter
from datetime import date
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
from search._tantivy_schema import hit_from_stored, id_key, micros, midnight
from search.analysis import analyze
from search.model import Hit, IdPage, Page, Query

FACET_FIELDS = {"agency_id": "agency_id", "document_type": "document_type", "year": "year"}
FACET_SIZE = 1000
"""Buckets returned per facet (more distinct values than this are cut, largest kept)."""
_TIE_CAP = 10_000
"""Documents of one query sharing one timestamp (or one 8-byte id prefix) read at a page
edge; beyond this, order within that group is not guaranteed (never near in practice)."""
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
    # One term: its (title OR text) union alone, not wrapped in a one-clause conjunction.
    # Same matches and scores, but tantivy can then rank a union of term scorers with
    # block-max WAND (skipping blocks that cannot reach the top k) instead of scoring
    # every match: the unfiltered archivist search on a word in most documents.
    return clauses[0][1] if len(clauses) == 1 else tantivy.Query.boolean_query(clauses)


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
    text = query.text or ""
    if not filters:
        return _text_clause(schema, text) if text.strip() else tantivy.Query.all_query()
    clauses = [(Must, tantivy.Query.const_score_query(f, 0.0)) for f in filters]
    if text.strip():
        clauses.append((Must, _text_clause(schema, text)))
    return tantivy.Query.boolean_query(clauses)


def _at(schema: tantivy.Schema, micros: int) -> tantivy.Query:
    return tantivy.Query.range_query(
        schema, "ingested_us", tantivy.FieldType.Integer, micros, micros
    )


_TOTAL = "kluis_total"
"""The aggregation counting the matches (not a facet name, see ``FACET_FIELDS``)."""
_TOTAL_REQUEST = {_TOTAL: {"value_count": {"field": "ingested_us"}}}
"""Every document has exactly one ``ingested_us``, so its value count is the match count."""


def _total_and_facets(
    searcher: tantivy.Searcher, base: tantivy.Query, query: Query
) -> tuple[int, dict[str, dict[str, int]]]:
    """The number of matches and the facet counts, in one unscored pass over the matches.

    Counting with the top-k search instead (``count=True``) makes tantivy score every
    match and rules out block-max WAND pruning: at 1M documents a common word cost several
    times the whole aggregation.
    """
    request: dict[str, Any] = {
        name: {
            "terms": {"field": FACET_FIELDS[name], "size": FACET_SIZE, "segment_size": FACET_SIZE}
        }
        for name in dict.fromkeys(query.facets)
    }
    # Every entry has exactly one year, so the year facet's buckets (plus what its cut left
    # over) already count the matches: no extra column read (about 2 ms on 1M matches).
    by_year = "year" in request
    result: dict[str, Any] = searcher.aggregate(
        base, request if by_year else request | _TOTAL_REQUEST
    )
    total = _year_total(result.get("year", {})) if by_year else None
    if total is None:
        if by_year:  # never seen: a year facet cut with an uncertain count
            result |= searcher.aggregate(base, _TOTAL_REQUEST)
        total = int(result.get(_TOTAL, {}).get("value") or 0)
    facets: dict[str, dict[str, int]] = {}
    for name in request:
        buckets = result.get(name, {}).get("buckets", [])
        pairs = [(_bucket_key(b["key"]), int(b["doc_count"])) for b in buckets]
        facets[name] = dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))
    return total, facets


def _year_total(year: dict[str, Any]) -> int | None:
    """Matches counted by the year facet, or None if that count might not be exact."""
    if year.get("doc_count_error_upper_bound", 0):
        return None
    counted = sum(int(b["doc_count"]) for b in year.get("buckets", []))
    return counted + int(year.get("sum_other_doc_count", 0))


def _bucket_key(key: object) -> str:
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key)


def _must(*queries: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(Must, q) for q in queries])


def _newest_page(
    index: tantivy.Index, searcher: tantivy.Searcher, base: tantivy.Query, query: Query
) -> tuple[list[Hit], str | None]:
    """One ``newest`` page. After a cursor ``(t, id)``: first the documents at exactly ``t``
    with a greater id (a handful, filtered here: a string range query would walk the whole
    aip_id term dictionary), then those older than ``t``."""
    schema = index.schema
    cursor = decode_cursor(query)
    limit = query.limit
    lead: list[Hit] = []
    page_q = base
    if isinstance(cursor, NewestCursor):
        same = searcher.search(_must(base, _at(schema, cursor.ingested_us)), _TIE_CAP, count=False)
        lead = sorted(
            (h for h in (_hit(searcher, a) for _, a in same.hits) if h.aip_id > cursor.aip_id),
            key=_newest_key,
        )
        older = tantivy.Query.range_query(
            schema,
            "ingested_us",
            tantivy.FieldType.Integer,
            None,
            cursor.ingested_us,
            include_upper=False,
        )
        page_q = _must(base, older)
        if len(lead) >= limit:
            more = len(lead) > limit or bool(searcher.search(page_q, 1, count=False).hits)
            hits = lead[:limit]
            token = NewestCursor(cursor.ingested_us, hits[-1].aip_id) if more else None
            return hits, encode_cursor(query, token) if token else None
    rest, token = _newest_from(searcher, schema, page_q, limit - len(lead))
    return lead + rest, encode_cursor(query, token) if token else None


def _newest_from(
    searcher: tantivy.Searcher, schema: tantivy.Schema, page_q: tantivy.Query, limit: int
) -> tuple[list[Hit], NewestCursor | None]:
    """The first ``limit`` hits of ``page_q`` in (ingested_at desc, aip_id asc) order."""
    found = searcher.search(page_q, limit + 1, count=False, order_by_field="ingested_us")
    rows = [(int(ts), addr) for ts, addr in found.hits]
    if len(rows) <= limit:
        return sorted((_hit(searcher, a) for _, a in rows), key=_newest_key), None
    boundary = rows[limit - 1][0]
    if rows[limit][0] < boundary:
        # Every match at the boundary time is already among the first ``limit`` rows: no
        # tie search (a range query on one timestamp costs more than the rest of the page).
        hits = sorted((_hit(searcher, a) for _, a in rows[:limit]), key=_newest_key)
        return hits, NewestCursor(ingested_us=boundary, aip_id=hits[-1].aip_id)
    head = sorted((_hit(searcher, a) for ts, a in rows if ts > boundary), key=_newest_key)
    tie_q = _must(page_q, _at(schema, boundary))
    ties = searcher.search(
        tie_q, limit - len(head), count=False, order_by_field="aip_id", order=tantivy.Order.Asc
    )
    hits = head + [_hit(searcher, a) for _, a in ties.hits]
    return hits, NewestCursor(ingested_us=boundary, aip_id=hits[-1].aip_id)


def _scored_window(
    searcher: tantivy.Searcher, base: tantivy.Query, need: int
) -> list[tuple[float, tantivy.DocAddress]]:
    """The top hits by score, enough of them to hold every hit scoring at least as high as
    the ``need``-th one (so ties at the page edge can be ordered by time and id).

    A tie that reaches past the first window is usually large (at 1M documents: thousands
    of documents matching one word in equally long titles score alike), and a search costs
    mostly its pass over the matches, little per extra hit kept (measured: 7.8 ms for the
    top 53, 17.5 ms for the top 13,568 of 1M matches). So the window grows 256-fold, not
    step by step: such a tie costs two searches, not five."""
    window = need + 32
    while True:
        found = searcher.search(base, window, count=False)
        hits = [(float(s), a) for s, a in found.hits]
        if len(hits) < window or window >= _RELEVANCE_FETCH_CAP or hits[need - 1][0] > hits[-1][0]:
            return hits
        window = min(window * 256, _RELEVANCE_FETCH_CAP)


def _relevance_page(
    searcher: tantivy.Searcher, base: tantivy.Query, query: Query
) -> tuple[list[Hit], str | None]:
    cursor = decode_cursor(query)
    offset = cursor.offset if isinstance(cursor, RelevanceCursor) else 0
    end = offset + query.limit
    hits = _scored_window(searcher, base, end + 1)
    if len(hits) > end:
        # Only rows scoring at least the (end+1)-th can be among the first end+1: the rest
        # of the window is never looked at (no timestamps read, nothing sorted).
        floor = hits[end][0]
        hits = [h for h in hits if h[0] >= floor]
    stamps = searcher.fast_field_values("ingested_us", [a for _, a in hits]) if hits else []
    scores = [score for score, _ in hits]
    times = [int(ts or 0) for ts in stamps]
    if len(hits) > end + 1:
        hits, scores, times = _newest_of_tie(hits, scores, times, end + 1)
    # The aip_id tie-break needs the stored document: read it only where (score, time) ties.
    shared = Counter(zip(scores, times, strict=True))

    def tie(i: int) -> str:
        if shared[(scores[i], times[i])] < 2:
            return ""
        return str(searcher.doc(hits[i][1]).get_first("aip_id"))

    # Plain tuples sort in C; the row number is unique, so no comparison goes past it.
    keys = sorted((-scores[i], -times[i], tie(i), i) for i in range(len(hits)))
    page = [_hit(searcher, hits[i][1], scores[i]) for *_, i in keys[offset:end]]
    more = len(keys) > end and end < MAX_RELEVANCE_WINDOW
    return page, encode_cursor(query, RelevanceCursor(end)) if more else None


def _newest_of_tie(
    hits: list[tuple[float, tantivy.DocAddress]], scores: list[float], times: list[int], keep: int
) -> tuple[list[tuple[float, tantivy.DocAddress]], list[float], list[int]]:
    """The rows that can be among the first ``keep`` when every row scores at least the
    lowest score (``floor``), which thousands may share: the rows above ``floor`` and, of
    the tied ones, those at least as new as the ``keep - above``-th newest. A tied row older
    than that has that many strictly better rows, so dropping it changes no order; this
    spares sorting the whole tie (13 ms for 9,000 rows, measured at 1M documents)."""
    floor = min(scores)
    above = [i for i, score in enumerate(scores) if score > floor]
    tied = [i for i, score in enumerate(scores) if score == floor]
    oldest = heapq.nlargest(keep - len(above), (times[i] for i in tied))[-1]
    kept = above + [i for i in tied if times[i] >= oldest]
    return [hits[i] for i in kept], [scores[i] for i in kept], [times[i] for i in kept]


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
    total, facets = _total_and_facets(searcher, base, query)
    return Page(hits=tuple(hits), total=total, next_cursor=token, facets=facets)


def id_ordered(
    index: tantivy.Index,
    searcher: tantivy.Searcher,
    base: tantivy.Query,
    after: str | None,
    limit: int,
) -> list[tuple[str, tantivy.DocAddress]]:
    """The first ``limit`` matches of ``base`` after ``after`` in aip_id order.

    Sorted on the u64 ``id_key``; the few matches sharing an ``id_key`` with ``after`` or
    with the page's last row are ordered by their id here or in a small sorted search.
    """
    schema = index.schema
    lead: list[tuple[str, tantivy.DocAddress]] = []
    query = base
    if after is not None:
        key = id_key(after)
        same = searcher.search(_must(base, _key_is(schema, key)), _TIE_CAP, count=False)
        lead = sorted(
            row
            for row in ((str(searcher.doc(a).get_first("aip_id")), a) for _, a in same.hits)
            if row[0] > after
        )
        if len(lead) >= limit:
            return lead[:limit]
        greater = tantivy.Query.range_query(
            schema, "id_key", tantivy.FieldType.Unsigned, key, None, include_lower=False
        )
        query = _must(base, greater)
    return lead + _id_ordered_from(searcher, schema, query, limit - len(lead))


def _key_is(schema: tantivy.Schema, key: int) -> tantivy.Query:
    return tantivy.Query.range_query(schema, "id_key", tantivy.FieldType.Unsigned, key, key)


def _id_ordered_from(
    searcher: tantivy.Searcher, schema: tantivy.Schema, query: tantivy.Query, limit: int
) -> list[tuple[str, tantivy.DocAddress]]:
    found = searcher.search(
        query, limit, count=False, order_by_field="id_key", order=tantivy.Order.Asc
    )
    rows = [(int(key), addr) for key, addr in found.hits]
    if not rows:
        return []
    boundary = rows[-1][0] if len(rows) == limit else None
    head = sorted(
        (str(searcher.doc(addr).get_first("aip_id")), addr)
        for key, addr in rows
        if boundary is None or key < boundary
    )
    if boundary is None:
        return head
    ties = searcher.search(
        _must(query, _key_is(schema, boundary)),
        limit - len(head),
        count=False,
        order_by_field="aip_id",
        order=tantivy.Order.Asc,
    )
    return head + [(str(value), addr) for value, addr in ties.hits]


def retention_query(index: tantivy.Index, before: date) -> tantivy.Query:
    """retention_until < before AND on_hold = 0 AND disposed = 0."""
    schema = index.schema
    clauses = [
        tantivy.Query.range_query(
            schema,
            "retention_until",
            tantivy.FieldType.Date,
            tantivy.MIN_DATETIME,
            midnight(before),
            include_upper=False,
        ),
        tantivy.Query.term_query(schema, "on_hold", 0),
        tantivy.Query.term_query(schema, "disposed", 0),
    ]
    return tantivy.Query.boolean_query([(Must, c) for c in clauses])


def retention_page(
    index: tantivy.Index, searcher: tantivy.Searcher, before: date, after: str | None, limit: int
) -> IdPage:
    rows = id_ordered(index, searcher, retention_query(index, before), after, limit)
    ids = tuple(aip_id for aip_id, _ in rows)
    return IdPage(ids=ids, next_after=ids[-1] if len(ids) == limit else None)
