"""Every request body ``OpenSearchIndex`` sends is valid against the official OpenSearch
API specification (``tests/data/opensearch``), checked with a recording fake client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from opensearchpy.exceptions import ConnectionError as OSConnectionError
from opensearchpy.exceptions import NotFoundError

from search import IndexDocument, IndexUnavailableError, Query
from search import _opensearch_bodies as bodies
from search.analysis import ANALYSIS_VERSION
from search.opensearch import OpenSearchIndex
from tests.unit.search import opensearch_spec as spec

DOC = IndexDocument(
    aip_id="aip-1",
    owner_key="a" * 64,
    agency_id="OVO000001",
    document_type="besluit",
    title="Besluit bouwvergunning Café",
    text="Wij hebben uw aanvragen voor vergunningen ontvangen.",
    issued_on=date(2024, 5, 17),
    ingested_at=datetime(2025, 3, 1, 9, 0, 0, 123456, tzinfo=UTC),
    agency_ref="REF-1",
    retention_until=date(2034, 5, 17),
)
SOURCE_HIT = {
    "_id": "aip-1",
    "_score": 1.5,
    "_source": {
        "aip_id": "aip-1",
        "title": DOC.title,
        "agency_id": "OVO000001",
        "document_type": "besluit",
        "issued_on": "2024-05-17",
        "ingested_us": 1740819600123456,
        "digest": "d",
    },
    "sort": [1740819600123456, "aip-1"],
}


class FakeIndices:
    def __init__(self, calls: list[tuple[str, Any]]) -> None:
        self.calls = calls
        self.alias_exists = False
        # What ``GET <alias>/_mapping`` answers: the mapping of the index behind the alias.
        self.mapping: dict[str, Any] = bodies.mappings()

    def get_mapping(self, index: str) -> Any:
        return {"kluis-documents-1": {"mappings": self.mapping}}

    def put_index_template(self, name: str, body: Any) -> Any:
        self.calls.append(("indices.put_index_template", body))
        return {"acknowledged": True}

    def exists_alias(self, name: str) -> bool:
        return self.alias_exists

    def create(self, index: str, body: Any) -> Any:
        self.calls.append(("indices.create", body))
        return {"acknowledged": True}

    def refresh(self, index: str) -> Any:
        return {}

    def get_alias(self, name: str) -> Any:
        return {"kluis-documents-1": {"aliases": {name: {}}}}

    def update_aliases(self, body: Any) -> Any:
        self.calls.append(("indices.update_aliases", body))
        return {"acknowledged": True}

    def delete(self, index: str) -> Any:
        return {"acknowledged": True}


class FakeClient:
    """Records (operation, body); answers with minimal, well-formed responses."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.indices = FakeIndices(self.calls)
        self.hits: list[dict[str, Any]] = [SOURCE_HIT]
        self.fail: Exception | None = None

    def bulk(self, body: Any, **kwargs: Any) -> Any:
        if self.fail:
            raise self.fail
        lines = [json.loads(line) for line in body.splitlines()]
        self.calls.append(("bulk", lines))
        return {"errors": False, "items": []}

    def search(self, body: Any, **kwargs: Any) -> Any:
        if self.fail:
            raise self.fail
        self.calls.append(("search", body))
        aggs = {
            name: {"buckets": [{"key": 2024 if name == "year" else "x", "doc_count": 1}]}
            for name in body.get("aggs", {})
        }
        return {
            "hits": {"total": {"value": len(self.hits)}, "hits": self.hits},
            "aggregations": aggs,
        }

    def get(self, index: str, id: str, **kwargs: Any) -> Any:
        if id == "missing":
            raise NotFoundError(404, "not_found", {})
        return {"found": True, **SOURCE_HIT}

    def delete_by_query(self, index: str, body: Any, **kwargs: Any) -> Any:
        self.calls.append(("delete_by_query", body))
        return {"deleted": 0}

    def close(self) -> None:
        pass


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def index(client: FakeClient) -> Iterator[OpenSearchIndex]:
    built = OpenSearchIndex(client)
    yield built
    built.close()


QUERIES = [
    Query(),
    Query(owner_key="a" * 64),
    Query(owner_key="a" * 64, text="vergunningen café", sort="relevance"),
    Query(text="besluit", facets=("agency_id", "document_type", "year"), sort="relevance"),
    Query(agency_id="OVO000001", document_type="besluit", issued_from=date(2024, 1, 1)),
    Query(issued_to=date(2024, 12, 31), facets=("year",)),
    Query(agency_id="OVO000001", agency_ref="REF-1"),
    Query(text="!!!"),
]


def assert_valid(calls: list[tuple[str, Any]]) -> None:
    assert calls
    for operation, body in calls:
        assert spec.errors(operation, body) == [], (operation, body)


def test_setup_sends_a_valid_template_and_index(client: FakeClient, index: OpenSearchIndex) -> None:
    assert [op for op, _ in client.calls] == ["indices.put_index_template", "indices.create"]
    assert_valid(client.calls)


@pytest.mark.parametrize("query", QUERIES)
def test_search_bodies_are_valid(client: FakeClient, index: OpenSearchIndex, query: Query) -> None:
    client.calls.clear()
    client.hits = [SOURCE_HIT] * (query.limit + 1)
    page = index.search(query)
    if page.next_cursor:
        index.search(replace(query, cursor=page.next_cursor))
    assert_valid(client.calls)


def test_writes_retention_listing_and_rebuild_send_valid_bodies(
    client: FakeClient, index: OpenSearchIndex
) -> None:
    client.calls.clear()
    index.submit([DOC, replace(DOC, aip_id="aip-2", retention_until=None, on_hold=True)])
    index.remove(["aip-1", "aip-3"])
    index.retention_due(date(2030, 1, 1), limit=1)
    index.retention_due(date(2030, 1, 1), after="aip-1", limit=10)
    assert list(index.digests()) == [("aip-1", "d")]
    index.clear()
    index.rebuild([DOC])
    ops = {op for op, _ in client.calls}
    assert ops == {"bulk", "search", "delete_by_query", "indices.create", "indices.update_aliases"}
    assert_valid(client.calls)


def test_bulk_lines_carry_the_pre_analysed_dutch_terms() -> None:
    action, source = bodies.bulk_index_lines("kluis", [DOC])
    assert action == {"index": {"_index": "kluis", "_id": "aip-1"}}
    assert source["title_nl"] == "besluit bouwvergunn caf"
    assert "vergunn" in source["text_nl"].split()
    assert source["ingested_us"] == 1740819600123456
    assert spec.schema_errors("_core.bulk.yaml", "OperationContainer", action) == []


def test_the_validator_rejects_misspelt_and_malformed_bodies() -> None:
    assert spec.errors("search", {"query": {"bool": {"filtre": []}}})
    assert spec.errors("search", {"sortt": [{"aip_id": {"order": "asc"}}]})
    assert spec.errors("search", {"query": {"term": {"f": {"value": "x"}}}, "size": "many"})
    template = bodies.index_template("kluis")
    template["template"]["mappings"]["properties"]["x"] = {"type": "keywrd"}
    assert spec.errors("indices.put_index_template", template)
    # The spec leaves action names open, but an action line is exactly one operation.
    two = {"index": {"_id": "1"}, "delete": {"_id": "1"}}
    assert spec.schema_errors("_core.bulk.yaml", "OperationContainer", two)
    assert spec.schema_errors("_core.bulk.yaml", "OperationContainer", {})


def test_the_dutch_analyser_of_the_template_is_declared() -> None:
    analysis = bodies.index_settings()["analysis"]
    assert analysis["analyzer"]["kluis_nl_terms"]["tokenizer"] == "whitespace"
    assert analysis["filter"]["kluis_dutch_stemmer"] == {"type": "snowball", "language": "Dutch"}
    assert (
        spec.schema_errors("indices._common.yaml", "IndexSettings", bodies.index_settings()) == []
    )


def test_hits_cursor_facets_and_missing_get(client: FakeClient, index: OpenSearchIndex) -> None:
    client.hits = [SOURCE_HIT] * 3
    page = index.search(Query(limit=2, facets=("year",)))
    assert page.hits[0].aip_id == "aip-1" and page.hits[0].ingested_at == DOC.ingested_at
    assert page.next_cursor is not None and page.total == 3
    assert page.facets == {"year": {"2024": 1}}
    last = client.calls[-1][1]
    index.search(Query(limit=2, facets=("year",), cursor=page.next_cursor))
    assert client.calls[-1][1]["search_after"] == [1740819600123456, "aip-1"]
    assert "search_after" not in last
    assert index.get("missing") is None
    assert index.get("aip-1") is not None


def test_client_failures_become_index_unavailable(
    client: FakeClient, index: OpenSearchIndex
) -> None:
    client.fail = OSConnectionError("N/A", "refused", Exception("refused"))
    with pytest.raises(IndexUnavailableError):
        index.search(Query())
    with pytest.raises(IndexUnavailableError):
        index.submit([DOC])


def test_rejected_bulk_items_raise(client: FakeClient, index: OpenSearchIndex) -> None:
    def bulk(body: Any, **kwargs: Any) -> Any:
        return {
            "errors": True,
            "items": [
                {"delete": {"_id": "gone", "status": 404}},
                {"index": {"_id": "aip-1", "status": 400, "error": {"type": "mapper_parsing"}}},
            ],
        }

    client.bulk = bulk  # type: ignore[method-assign]
    with pytest.raises(IndexUnavailableError, match="mapper_parsing"):
        index.submit([DOC])


def test_the_mapping_records_its_versions(client: FakeClient, index: OpenSearchIndex) -> None:
    template = client.calls[0][1]
    assert template["template"]["mappings"]["_meta"] == {"kluis": bodies.built_with()}
    assert bodies.built_with()["analysis"] == ANALYSIS_VERSION
    answer = client.indices.get_mapping("kluis-documents")["kluis-documents-1"]
    assert spec.schema_errors("indices.get_mapping.yaml", "IndexMappingRecord", answer) == []


def test_an_existing_current_index_is_used(client: FakeClient) -> None:
    client.indices.alias_exists = True
    index = OpenSearchIndex(client)
    assert [op for op, _ in client.calls] == ["indices.put_index_template"]
    assert index.search(Query()).hits


@pytest.mark.parametrize(
    "meta",
    [None, {"kluis": {"mapping": 0, "analysis": ANALYSIS_VERSION}}, {"kluis": {"mapping": 1}}],
    ids=["unrecorded", "old-mapping", "no-analysis"],
)
def test_an_index_built_with_other_versions_is_refused_until_rebuilt(
    client: FakeClient, meta: dict[str, Any] | None
) -> None:
    client.indices.alias_exists = True
    client.indices.mapping = {k: v for k, v in bodies.mappings().items() if k != "_meta"}
    if meta is not None:
        client.indices.mapping["_meta"] = meta
    index = OpenSearchIndex(client)
    refusals = [
        lambda: index.search(Query()),
        lambda: index.submit([DOC]),
        lambda: index.remove(["aip-1"]),
        lambda: index.get("aip-1"),
        lambda: list(index.digests()),
        lambda: list(index.ids()),
        lambda: index.retention_due(date(2030, 1, 1)),
        lambda: index.load([DOC]),
        index.clear,
    ]
    client.calls.clear()
    for call in refusals:
        with pytest.raises(IndexUnavailableError, match=r"reindex --swap"):
            call()
    assert client.calls == []  # nothing was sent to the stale index
    # The rebuild makes a new index from the current template and swaps the alias.
    assert index.rebuild([DOC]) == 1
    assert index.search(Query()).hits
    index.submit([DOC])


def test_a_rebuild_by_another_process_is_noticed(
    client: FakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.indices.alias_exists = True
    client.indices.mapping = {**bodies.mappings(), "_meta": {}}
    waiting = OpenSearchIndex(client)
    monkeypatch.setattr("search.opensearch.STALE_RECHECK_SECONDS", 0.0)
    eager = OpenSearchIndex(client)
    for index in (waiting, eager):
        with pytest.raises(IndexUnavailableError):
            index.search(Query())
    client.indices.mapping = bodies.mappings()  # ``kluis reindex --swap`` ran elsewhere
    with pytest.raises(IndexUnavailableError):
        waiting.search(Query())  # the mapping is not read again within the interval
    assert eager.search(Query()).hits
