"""Every request body the OpenSearch backend sends, built by pure functions.

Kept apart from the client code so unit tests can validate each body against the official
OpenSearch API specification (``tests/data/opensearch/``) without a cluster.

Analysis, deliberately: Kluis analyses Dutch text once, in Python
(:func:`search.analysis.analyze`: lowercase, diacritic folding, Snowball *Porter* Dutch via
PyStemmer ``dutch_porter``), for both backends. OpenSearch indexes those terms with the
``kluis_nl_terms`` analyzer (``whitespace`` tokenizer + ``lowercase``), and queries send the
analysed terms as ``term`` queries, exactly as the tantivy backend does. So both backends
hold the same terms and give the same matches: tantivy's built-in Dutch stemmer is the
Snowball 3.x (Kraaij-Pohlmann) one, and which Snowball generation Lucene's ``dutch``
stemmer runs depends on the OpenSearch (Lucene) release, so relying on either engine's
stemmer would make the two disagree (``vergunning`` → ``vergun`` vs ``vergunn``). The
template also defines ``kluis_nl`` (standard tokenizer, lowercase, asciifolding, Snowball
``Dutch`` = the Porter algorithm in Lucene 9): it analyses ``title.nl`` so operators searching
in OpenSearch Dashboards get Dutch matching; Kluis itself never queries it.

Fields mirror the tantivy schema (:mod:`search._tantivy_schema`); ``ingested_us`` (µs since
the epoch, ``long``) carries the newest-first order and the cursor, ``aip_id`` (keyword)
the tie-break and the id order of the retention query and of ``ids()``.

Every index records the mapping and analysis versions it was built with in its mapping's
``_meta`` (:func:`built_with`); an index built with other ones must be rebuilt, exactly as a
tantivy index with another ``kluis-index.json`` (see :class:`search.opensearch.OpenSearchIndex`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from search._outbox import utc
from search._paging import MAX_RELEVANCE_WINDOW, NewestCursor
from search._tantivy_schema import micros
from search.analysis import ANALYSIS_VERSION, analyze
from search.model import IndexDocument, Query
from search.projection import document_digest

FACET_SIZE = 1000
FACET_FIELDS = {"agency_id": "agency_id", "document_type": "document_type", "year": "year"}
TERMS_ANALYZER = "kluis_nl_terms"
DUTCH_ANALYZER = "kluis_nl"

Body = dict[str, Any]

MAPPING_VERSION = 1
"""Bump with every change to :func:`mappings` or :func:`index_settings` that needs a rebuild."""


def built_with() -> Body:
    """What an index built by this version records in its mapping's ``_meta.kluis``."""
    return {"mapping": MAPPING_VERSION, "analysis": ANALYSIS_VERSION}


def index_settings(*, shards: int = 1, replicas: int = 1) -> Body:
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "refresh_interval": "1s",
        "analysis": {
            "analyzer": {
                TERMS_ANALYZER: {
                    "type": "custom",
                    "tokenizer": "whitespace",
                    "filter": ["lowercase"],
                },
                DUTCH_ANALYZER: {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "asciifolding", "kluis_dutch_stemmer"],
                },
            },
            "filter": {"kluis_dutch_stemmer": {"type": "snowball", "language": "Dutch"}},
        },
    }


def mappings() -> Body:
    keyword = {"type": "keyword"}
    stored_only = {"type": "keyword", "index": False, "doc_values": False}
    terms = {"type": "text", "analyzer": TERMS_ANALYZER, "index_options": "freqs", "norms": True}
    return {
        "dynamic": "strict",
        "_meta": {"kluis": built_with()},
        "_source": {"excludes": ["title_nl", "text_nl"]},
        "properties": {
            "aip_id": keyword,
            "owner_key": keyword,
            "agency_id": keyword,
            "document_type": keyword,
            "agency_ref": keyword,
            "title": {
                "type": "keyword",
                "index": False,
                "doc_values": False,
                "fields": {"nl": {"type": "text", "analyzer": DUTCH_ANALYZER}},
            },
            "title_nl": terms,
            "text_nl": terms,
            "issued_on": {"type": "date", "format": "strict_date"},
            "ingested_us": {"type": "long"},
            "ingested_at": {"type": "date", "format": "strict_date_optional_time"},
            "year": {"type": "integer"},
            "retention_until": {"type": "date", "format": "strict_date"},
            "on_hold": {"type": "boolean"},
            "disposed": {"type": "boolean"},
            "digest": stored_only,
        },
    }


def index_template(alias: str, *, shards: int = 1, replicas: int = 1) -> Body:
    """``PUT _index_template/<alias>``: every index ``<alias>-*`` gets our settings/mappings."""
    return {
        "index_patterns": [f"{alias}-*"],
        "priority": 100,
        "template": {
            "settings": index_settings(shards=shards, replicas=replicas),
            "mappings": mappings(),
        },
        "_meta": {"owner": "kluis", "analysis": "python nl-porter, see search/_opensearch_bodies"},
    }


def create_index(alias: str | None) -> Body:
    """``PUT <index>``: settings and mappings come from the template; maybe the alias."""
    return {"aliases": {alias: {}}} if alias else {}


def alias_swap(alias: str, new_index: str, old_indices: Sequence[str]) -> Body:
    """``POST _aliases``: one atomic action list moving ``alias`` to ``new_index``."""
    actions: list[Body] = [{"remove": {"index": old, "alias": alias}} for old in old_indices]
    actions.append({"add": {"index": new_index, "alias": alias}})
    return {"actions": actions}


def source(doc: IndexDocument) -> Body:
    """The ``_source`` of one document."""
    return {
        "aip_id": doc.aip_id,
        "owner_key": doc.owner_key,
        "agency_id": doc.agency_id,
        "document_type": doc.document_type,
        "agency_ref": doc.agency_ref,
        "title": doc.title,
        "title_nl": " ".join(analyze(doc.title)),
        "text_nl": " ".join(analyze(doc.text)),
        "issued_on": doc.issued_on.isoformat(),
        "ingested_us": micros(doc.ingested_at),
        "ingested_at": utc(doc.ingested_at).isoformat(),
        "year": doc.issued_on.year,
        "retention_until": doc.retention_until.isoformat() if doc.retention_until else None,
        "on_hold": doc.on_hold,
        "disposed": doc.disposed,
        "digest": document_digest(doc),
    }


def bulk_index_lines(index: str, documents: Iterable[IndexDocument]) -> list[Body]:
    """Action and source lines of a ``_bulk`` request upserting ``documents``."""
    lines: list[Body] = []
    for doc in documents:
        lines.append({"index": {"_index": index, "_id": doc.aip_id}})
        lines.append(source(doc))
    return lines


def bulk_delete_lines(index: str, aip_ids: Iterable[str]) -> list[Body]:
    return [{"delete": {"_index": index, "_id": aip_id}} for aip_id in aip_ids]


def ndjson(lines: Iterable[Body]) -> str:
    return "".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines
    )


def _text_clause(text: str) -> Body | None:
    """None: the text has no words, which matches nothing (as on tantivy)."""
    terms = list(dict.fromkeys(analyze(text)))
    if not terms:
        return None
    return {
        "bool": {
            "must": [
                {
                    "bool": {
                        "should": [
                            {"term": {"title_nl": {"value": term, "boost": 2.0}}},
                            {"term": {"text_nl": {"value": term}}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
                for term in terms
            ]
        }
    }


def query_clause(query: Query) -> Body:
    """Every filter of ``query`` (non-scoring) plus its text clause."""
    filters: list[Body] = []
    for field in ("owner_key", "agency_id", "document_type", "agency_ref"):
        value = getattr(query, field)
        if value is not None:
            filters.append({"term": {field: {"value": value}}})
    if query.issued_from is not None or query.issued_to is not None:
        bounds: Body = {"format": "strict_date"}
        if query.issued_from is not None:
            bounds["gte"] = query.issued_from.isoformat()
        if query.issued_to is not None:
            bounds["lte"] = query.issued_to.isoformat()
        filters.append({"range": {"issued_on": bounds}})
    must: list[Body] = []
    if query.text is not None and query.text.strip():
        clause = _text_clause(query.text)
        if clause is None:
            return {"match_none": {}}
        must.append(clause)
    if not filters and not must:
        return {"match_all": {}}
    boolean: Body = {}
    if filters:
        boolean["filter"] = filters
    if must:
        boolean["must"] = must
    return {"bool": boolean}


NEWEST_SORT: list[Body] = [{"ingested_us": {"order": "desc"}}, {"aip_id": {"order": "asc"}}]
RELEVANCE_SORT: list[Body | str] = [
    "_score",  # descending; the ``{"_score": {...}}`` form is ambiguous in the API spec
    {"ingested_us": {"order": "desc"}},
    {"aip_id": {"order": "asc"}},
]
HIT_SOURCE = ["aip_id", "title", "agency_id", "document_type", "issued_on", "ingested_us"]


def _aggregations(query: Query) -> Body:
    return {
        name: {"terms": {"field": FACET_FIELDS[name], "size": FACET_SIZE}}
        for name in dict.fromkeys(query.facets)
    }


def search_newest(query: Query, cursor: NewestCursor | None) -> Body:
    """One ``newest`` page: ``limit + 1`` hits after the keyset ``cursor``."""
    body: Body = {
        "query": query_clause(query),
        "size": query.limit + 1,
        "sort": NEWEST_SORT,
        "track_total_hits": True,
        "_source": {"includes": HIT_SOURCE},
    }
    if cursor is not None:
        body["search_after"] = [cursor.ingested_us, cursor.aip_id]
    if query.facets:
        body["aggs"] = _aggregations(query)
    return body


def search_relevance(query: Query, offset: int) -> Body:
    body: Body = {
        "query": query_clause(query),
        "from": offset,
        # one extra hit tells whether a next page exists; from + size stays within
        # index.max_result_window (10,000), where relevance paging stops anyway
        "size": min(query.limit + 1, MAX_RELEVANCE_WINDOW - offset),
        "sort": RELEVANCE_SORT,
        "track_total_hits": True,
        "track_scores": True,
        "_source": {"includes": HIT_SOURCE},
    }
    if query.facets:
        body["aggs"] = _aggregations(query)
    return body


def retention(before: date, after: str | None, limit: int) -> Body:
    """Ids with retention_until < before, not on hold, not disposed, ascending by id."""
    filters: list[Body] = [
        {"range": {"retention_until": {"lt": before.isoformat(), "format": "strict_date"}}},
        {"term": {"on_hold": {"value": False}}},
        {"term": {"disposed": {"value": False}}},
    ]
    body: Body = {
        "query": {"bool": {"filter": filters}},
        "size": limit,
        "sort": [{"aip_id": {"order": "asc"}}],
        "_source": False,
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = [after]
    return body


def id_listing(after: str | None, size: int) -> Body:
    """A page of ``(aip_id, digest)`` in id order, for ``ids()``/``digests()``."""
    body: Body = {
        "query": {"match_all": {}},
        "size": size,
        "sort": [{"aip_id": {"order": "asc"}}],
        "_source": {"includes": ["digest"]},
        "track_total_hits": False,
    }
    if after is not None:
        body["search_after"] = [after]
    return body


def delete_all() -> Body:
    """``POST <alias>/_delete_by_query``."""
    return {"query": {"match_all": {}}}
