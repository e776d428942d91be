"""The contract every :class:`search.base.Index` backend must pass.

Test bodies use only the protocol. A backend is one ``pytest.param`` in ``BACKENDS``: a
factory from a fresh directory to an open index (the OpenSearch one will read
``KLUIS_TEST_OPENSEARCH_URL`` and skip with a reason when it is unset).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from search import Index, IndexDocument, InvalidQueryError, Query, TantivyIndex
from search.base import stream_retention_due
from search.projection import document_digest

IndexFactory = Callable[[Path], Index]


def _tantivy(directory: Path) -> Index:
    return TantivyIndex(directory / "index")


def _opensearch(directory: Path) -> Index:
    url = os.environ.get("KLUIS_TEST_OPENSEARCH_URL")
    if not url:
        pytest.skip("KLUIS_TEST_OPENSEARCH_URL is not set (no OpenSearch server here)")
    from search.opensearch import OpenSearchIndex, connect

    client = connect(url, verify_certs=os.environ.get("KLUIS_TEST_OPENSEARCH_VERIFY") != "0")
    return OpenSearchIndex(client, f"kluis-test-{uuid.uuid4().hex[:12]}", replicas=0)


BACKENDS = [
    pytest.param(_tantivy, id="tantivy"),
    pytest.param(_opensearch, id="opensearch", marks=pytest.mark.opensearch),
]

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
OWNER_A = "a" * 64
OWNER_B = "b" * 64


@pytest.fixture(params=BACKENDS)
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Index]:
    factory: IndexFactory = request.param
    built = factory(tmp_path)
    try:
        yield built
    finally:
        built.close()


def doc(aip_id: str, seconds: int = 0, **changes: object) -> IndexDocument:
    base = IndexDocument(
        aip_id=aip_id,
        owner_key=OWNER_A,
        agency_id="OVO000001",
        document_type="attest",
        title=f"Attest {aip_id}",
        text="Hierbij bevestigen wij uw aanvraag.",
        issued_on=date(2024, 5, 17),
        ingested_at=T0 + timedelta(seconds=seconds),
        agency_ref=f"REF-{aip_id}",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def put(index: Index, *documents: IndexDocument) -> None:
    index.submit(documents)
    index.refresh()


def ids_of(index: Index, query: Query) -> list[str]:
    return [h.aip_id for h in index.search(query).hits]


def all_pages(index: Index, query: Query) -> list[str]:
    seen: list[str] = []
    page = index.search(query)
    seen += [h.aip_id for h in page.hits]
    while page.next_cursor is not None:
        page = index.search(replace(query, cursor=page.next_cursor))
        seen += [h.aip_id for h in page.hits]
    return seen


def test_submitted_document_is_searchable_and_gettable(index: Index) -> None:
    d = doc("aip-1", title="Besluit bouwvergunning", issued_on=date(2023, 1, 31))
    put(index, d)

    page = index.search(Query())
    assert page.total == 1
    [hit] = page.hits
    assert (hit.aip_id, hit.title, hit.agency_id, hit.document_type) == (
        "aip-1",
        "Besluit bouwvergunning",
        "OVO000001",
        "attest",
    )
    assert hit.issued_on == date(2023, 1, 31)
    assert hit.ingested_at == d.ingested_at
    assert index.get("aip-1") == replace(hit, score=index.get("aip-1").score)  # type: ignore[union-attr]
    assert index.get("missing") is None


def test_upserting_the_same_id_keeps_one_document_with_the_latest_values(index: Index) -> None:
    put(index, doc("aip-1", title="Eerste versie"))
    put(index, doc("aip-1", title="Tweede versie"))
    index.submit([doc("aip-2", title="x"), doc("aip-2", title="Laatste in dezelfde batch")])
    index.refresh()

    assert index.search(Query()).total == 2
    assert index.get("aip-1").title == "Tweede versie"  # type: ignore[union-attr]
    assert index.get("aip-2").title == "Laatste in dezelfde batch"  # type: ignore[union-attr]
    assert ids_of(index, Query(text="eerste")) == []


def test_remove_takes_documents_out_and_ignores_unknown_ids(index: Index) -> None:
    put(index, doc("aip-1"), doc("aip-2"))
    index.remove(["aip-1", "never-indexed"])
    index.refresh()

    assert ids_of(index, Query()) == ["aip-2"]
    assert index.get("aip-1") is None


def test_an_owner_query_never_returns_another_owners_documents(index: Index) -> None:
    put(
        index,
        doc("a-1", 1, owner_key=OWNER_A, text="vergunning"),
        doc("a-2", 2, owner_key=OWNER_A, text="vergunning"),
        doc("b-1", 3, owner_key=OWNER_B, text="vergunning"),
    )
    for query in (
        Query(owner_key=OWNER_A),
        Query(owner_key=OWNER_A, text="vergunning"),
        Query(owner_key=OWNER_A, text="vergunning", sort="relevance"),
        Query(owner_key=OWNER_A, agency_ref="REF-b-1"),
    ):
        page = index.search(replace(query, facets=("agency_id",)))
        assert {h.aip_id for h in page.hits} <= {"a-1", "a-2"}, query
        assert page.total == len(page.hits)
        assert sum(page.facets["agency_id"].values()) == page.total
    assert index.search(Query(owner_key="c" * 64)).total == 0


def test_newest_first_breaks_equal_times_by_aip_id(index: Index) -> None:
    put(index, doc("c", 5), doc("a", 9), doc("b", 5), doc("d", 1), doc("e", 9))
    assert ids_of(index, Query()) == ["a", "e", "b", "c", "d"]


def test_cursor_pages_are_complete_and_stable_while_newer_documents_arrive(index: Index) -> None:
    put(index, *(doc(f"old-{i:02d}", i // 3) for i in range(25)))  # ties across page edges
    expected = ids_of(index, Query(limit=100))

    first = index.search(Query(limit=10))
    put(index, *(doc(f"new-{i}", 1000 + i) for i in range(5)))
    second = index.search(Query(limit=10, cursor=first.next_cursor))
    third = index.search(Query(limit=10, cursor=second.next_cursor))

    served = [h.aip_id for p in (first, second, third) for h in p.hits]
    assert served == expected
    assert third.next_cursor is None
    assert third.total == 30


def test_cursor_paging_when_every_document_has_the_same_time(index: Index) -> None:
    ids = ["x.1", "x_1", "x-1", "x:1", "x@1", "x=1", "x+1", "X1", "x", "y"]
    put(index, *(doc(i) for i in ids))
    assert all_pages(index, Query(limit=3)) == sorted(ids)


def test_relevance_pages_rank_by_score_and_never_repeat(index: Index) -> None:
    put(
        index,
        doc("title-hit", 1, title="Vergunning", text="bijlage"),
        doc("text-hit", 2, title="Brief", text="uw vergunning"),
        *(
            doc(f"same-{i}", 3 + i // 2, title="Brief", text="vergunning vergunning")
            for i in range(7)
        ),
        doc("other", 50, title="Brief", text="geen treffer"),
    )
    query = Query(text="vergunning", sort="relevance", limit=2)
    served = all_pages(index, query)
    assert served[0] == "title-hit"  # title counts double
    assert sorted(served) == sorted(["title-hit", "text-hit", *(f"same-{i}" for i in range(7))])
    assert len(served) == len(set(served))
    scores = [h.score for h in index.search(replace(query, limit=100)).hits]
    assert scores == sorted(scores, reverse=True)


def test_relevance_orders_a_large_tie_by_time_then_id_across_every_page(index: Index) -> None:
    # 300 equal scores: more than the first window of hits the tantivy backend reads, with
    # four documents per timestamp, so (time, id) decides at many page edges.
    tied = [
        doc(f"tie-{i:03d}", i % 75, title="Brief", text="vergunning", owner_key=OWNER_B)
        for i in range(300)
    ]
    put(index, doc("best", 0, title="Vergunning", text="vergunning", owner_key=OWNER_B), *tied)
    expected = ["best"] + [
        d.aip_id for d in sorted(tied, key=lambda d: (-d.ingested_at.timestamp(), d.aip_id))
    ]

    query = Query(owner_key=OWNER_B, text="vergunning", sort="relevance", limit=7)
    served = all_pages(index, query)

    assert served == expected


@pytest.mark.parametrize(
    ("indexed", "queried"),
    [
        ("vergunningen", "vergunning"),
        ("vergunning", "vergunningen"),
        ("besluiten", "besluit"),
        ("café", "cafe"),
        ("cafe", "Café"),
        ("geïnformeerd", "geinformeerd"),
        ("GEMEENTEN", "gemeente"),
    ],
)
def test_dutch_stemming_and_diacritic_folding(index: Index, indexed: str, queried: str) -> None:
    put(index, doc("hit", text=f"Wij hebben {indexed} ontvangen."), doc("miss", text="Niets."))
    assert ids_of(index, Query(text=queried)) == ["hit"]


def test_every_query_word_must_match_title_or_text(index: Index) -> None:
    put(
        index,
        doc("both", title="Vergunning", text="voor uw woning"),
        doc("one", title="Vergunning", text="voor uw auto"),
    )
    assert ids_of(index, Query(text="vergunning woningen")) == ["both"]
    assert ids_of(index, Query(text="  ")) != []  # blank text is no text filter
    assert ids_of(index, Query(text="!!! ...")) == []  # text without words matches nothing


def test_facets_count_every_match_not_only_the_page(index: Index) -> None:
    put(
        index,
        doc("1", agency_id="A", document_type="attest", issued_on=date(2023, 1, 1)),
        doc("2", agency_id="A", document_type="besluit", issued_on=date(2024, 1, 1)),
        doc("3", agency_id="B", document_type="besluit", issued_on=date(2024, 6, 1)),
        doc("4", agency_id="B", document_type="besluit", issued_on=date(2024, 7, 1), text="x"),
    )
    page = index.search(
        Query(text="aanvraag", limit=1, facets=("agency_id", "document_type", "year"))
    )
    assert page.total == 3
    assert len(page.hits) == 1
    assert dict(page.facets["agency_id"]) == {"A": 2, "B": 1}
    assert dict(page.facets["document_type"]) == {"besluit": 2, "attest": 1}
    assert dict(page.facets["year"]) == {"2024": 2, "2023": 1}
    assert index.search(Query()).facets == {}
    # The total is the same whichever facets are asked for, also when nothing matches.
    for facets in [(), ("agency_id",), ("year",), ("document_type", "year")]:
        assert index.search(Query(text="aanvraag", facets=facets)).total == 3
        assert index.search(Query(agency_id="B", facets=facets)).total == 2
        assert index.search(Query(text="onbekend", facets=facets)).total == 0


def test_filters_combine_with_and(index: Index) -> None:
    put(
        index,
        doc("1", agency_id="A", document_type="attest", issued_on=date(2024, 1, 1)),
        doc("2", agency_id="A", document_type="besluit", issued_on=date(2024, 1, 31)),
        doc("3", agency_id="B", document_type="besluit", issued_on=date(2024, 2, 1)),
    )
    assert ids_of(index, Query(agency_id="A", document_type="besluit")) == ["2"]
    window = Query(issued_from=date(2024, 1, 1), issued_to=date(2024, 1, 31))
    assert sorted(ids_of(index, window)) == ["1", "2"]
    assert ids_of(index, Query(issued_from=date(2024, 2, 1))) == ["3"]
    assert ids_of(index, Query(issued_to=date(2023, 12, 31))) == []


def test_lookup_by_agency_reference(index: Index) -> None:
    put(index, doc("1", agency_ref="2024/0042"), doc("2", agency_ref="2024/0043"))
    assert ids_of(index, Query(agency_ref="2024/0042")) == ["1"]
    assert ids_of(index, Query(agency_ref="2024/004")) == []


@pytest.mark.parametrize("limit", [0, -1, 101])
def test_limit_outside_1_to_100_is_refused(index: Index, limit: int) -> None:
    with pytest.raises(InvalidQueryError):
        index.search(Query(limit=limit))


@pytest.mark.parametrize(
    "dates",
    [{"issued_from": date(1316, 1, 1)}, {"issued_to": date(9999, 12, 31)}],
)
def test_dates_no_document_can_have_are_an_invalid_query(
    index: Index, dates: dict[str, date]
) -> None:
    with pytest.raises(InvalidQueryError):
        index.search(Query(**dates))  # type: ignore[arg-type]


def test_limits_1_and_100_are_accepted(index: Index) -> None:
    put(index, doc("1", 1), doc("2", 2))
    assert len(index.search(Query(limit=1)).hits) == 1
    assert len(index.search(Query(limit=100)).hits) == 2


@pytest.mark.parametrize("cursor", ["", "not base64 at all!", "e30", "eyJ2IjoxfQ", "x" * 5000])
def test_malformed_cursor_is_an_invalid_query(index: Index, cursor: str) -> None:
    with pytest.raises(InvalidQueryError):
        index.search(Query(cursor=cursor))


def test_cursor_of_another_query_is_an_invalid_query(index: Index) -> None:
    put(index, *(doc(f"d{i}", i) for i in range(3)))
    token = index.search(Query(owner_key=OWNER_A, limit=1)).next_cursor
    assert token is not None
    with pytest.raises(InvalidQueryError):
        index.search(Query(owner_key=OWNER_B, limit=1, cursor=token))
    with pytest.raises(InvalidQueryError):
        index.search(Query(owner_key=OWNER_A, text="x", sort="relevance", cursor=token))
    assert index.search(Query(owner_key=OWNER_A, limit=2, cursor=token)).total == 3


def test_clear_removes_everything_submitted_before(index: Index) -> None:
    put(index, doc("1"), doc("2"))
    index.clear()
    index.refresh()
    assert index.search(Query()).total == 0
    assert list(index.ids()) == []
    put(index, doc("3"))
    assert list(index.ids()) == ["3"]


def test_ids_lists_every_indexed_document(index: Index) -> None:
    assert list(index.ids()) == []
    put(index, *(doc(f"id-{i:03d}", i) for i in range(120)))
    index.remove(["id-007"])
    index.refresh()
    listed = list(index.ids())
    assert sorted(listed) == sorted(f"id-{i:03d}" for i in range(120) if i != 7)


def test_retention_query_finds_due_documents_not_on_hold_and_not_disposed(index: Index) -> None:
    put(
        index,
        doc("due-1", retention_until=date(2024, 12, 31)),
        doc("due-2", retention_until=date(2020, 1, 1)),
        doc("on-the-day", retention_until=date(2025, 1, 1)),
        doc("later", retention_until=date(2030, 1, 1)),
        doc("held", retention_until=date(2020, 1, 1), on_hold=True),
        doc("disposed", retention_until=date(2020, 1, 1), disposed=True),
        doc("permanent", retention_until=None),
    )
    page = index.retention_due(date(2025, 1, 1))
    assert page.ids == ("due-1", "due-2")
    assert page.next_after is None


def test_retention_query_streams_every_due_id_once_in_pages(index: Index) -> None:
    due = [f"d{i:03d}" for i in range(25)]
    put(index, *(doc(i, retention_until=date(2021, 1, 1)) for i in due))
    pages = list(stream_retention_due(index, date(2022, 1, 1), page_size=10))
    assert [len(p.ids) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p.ids] == due
    # a hold placed while streaming takes the document out of later pages
    first = index.retention_due(date(2022, 1, 1), limit=10)
    put(index, doc("d020", retention_until=date(2021, 1, 1), on_hold=True))
    rest = index.retention_due(date(2022, 1, 1), after=first.next_after, limit=100)
    assert "d020" not in rest.ids and rest.ids[0] == "d010"


@pytest.mark.parametrize("limit", [0, 10_001])
def test_retention_page_size_outside_1_to_10000_is_refused(index: Index, limit: int) -> None:
    with pytest.raises(InvalidQueryError):
        index.retention_due(date(2025, 1, 1), limit=limit)


def test_digests_identify_the_indexed_content(index: Index) -> None:
    a, b = doc("a"), doc("b", title="Ander")
    put(index, a, b)
    assert list(index.digests()) == [("a", document_digest(a)), ("b", document_digest(b))]
    put(index, replace(a, title="Gewijzigd"))
    assert dict(index.digests())["a"] == document_digest(replace(a, title="Gewijzigd"))


def test_retention_pages_keep_id_order_when_ids_share_long_prefixes(index: Index) -> None:
    due = sorted(
        [f"aip-0000-{c}" for c in "zyxwvutsrq"] + [f"aip-0001-{i}" for i in range(5)] + ["b", "a9"]
    )
    put(index, *(doc(i, retention_until=date(2021, 1, 1)) for i in due))
    for size in (1, 3, 4, 7):
        pages = list(stream_retention_due(index, date(2022, 1, 1), page_size=size))
        assert [i for p in pages for i in p.ids] == due, size
    assert list(index.ids()) == due


def test_cursor_pages_across_groups_of_equal_times(index: Index) -> None:
    times = {"a": 9, "b": 9, "c": 9, "d": 9, "e": 5, "f": 5, "g": 1}
    put(index, *(doc(i, seconds=s) for i, s in times.items()))
    expected = ["a", "b", "c", "d", "e", "f", "g"]
    for limit in (1, 2, 3, 4, 5):
        assert all_pages(index, Query(limit=limit)) == expected, limit
