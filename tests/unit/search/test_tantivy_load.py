"""TantivyIndex.load: the bulk path of rebuilds."""

from __future__ import annotations

from pathlib import Path

import pytest

from search import Query, TantivyIndex
from tests.unit.search.test_tantivy_index import doc


def test_load_writes_directly_and_upserts(tmp_path: Path) -> None:
    with TantivyIndex(tmp_path / "i") as index:
        index.submit([doc("old", title="Oud")])  # pending in the outbox: applied first
        assert index.load([doc("a"), doc("b"), doc("old", title="Nieuw")], commit_every=2) == 3
        assert sorted(index.ids()) == ["a", "b", "old"]  # visible without a refresh
        hit = index.get("old")
        assert hit is not None and hit.title == "Nieuw"


def test_load_with_analysis_workers_gives_the_same_index(tmp_path: Path) -> None:
    docs = [doc(f"d{i:03d}", text=f"vergunningen nummer {i}") for i in range(300)]
    with TantivyIndex(tmp_path / "one") as one, TantivyIndex(tmp_path / "two") as two:
        one.load(docs)
        two.load(docs, workers=2)
        assert list(one.digests()) == list(two.digests())
        assert two.search(Query(text="vergunning")).total == 300


def test_load_falls_back_to_the_outbox_while_another_index_holds_the_writer(
    tmp_path: Path,
) -> None:
    with TantivyIndex(tmp_path / "i", commit_interval=0.05) as server:
        server.start_indexer()
        server.refresh()
        assert server.holds_writer
        with TantivyIndex(tmp_path / "i") as cli:
            seen: list[int] = []
            assert cli.load([doc("x"), doc("y")], progress=seen.append) == 2
            assert seen == [2]
            cli.refresh()  # waits for the server's indexer to apply the entries
            assert sorted(cli.ids()) == ["x", "y"]


def test_load_refuses_a_malformed_id_and_keeps_the_index_unchanged(tmp_path: Path) -> None:
    with TantivyIndex(tmp_path / "i") as index:
        index.load([doc("kept")])
        with pytest.raises(ValueError):
            index.load([doc("fine"), doc("bad id")])
        assert list(index.ids()) == ["kept"]


def test_load_prepared_gives_the_same_index_as_load(tmp_path: Path) -> None:
    docs = [doc(f"d{i:03d}", text=f"vergunningen nummer {i} Café") for i in range(50)]
    with TantivyIndex(tmp_path / "one") as one, TantivyIndex(tmp_path / "two") as two:
        one.load(docs)
        assert two.load_prepared([two.prepare(d) for d in docs]) == 50
        assert list(one.digests()) == list(two.digests())
        query = Query(text="cafe vergunning", sort="relevance", limit=100)
        assert one.search(query) == two.search(query) and one.search(query).total == 50


def test_prepare_refuses_a_malformed_id(tmp_path: Path) -> None:
    with TantivyIndex(tmp_path / "i") as index, pytest.raises(ValueError):
        index.prepare(doc("bad id"))


def test_inside_bulk_loads_keep_one_writer_until_the_block_ends(tmp_path: Path) -> None:
    with TantivyIndex(tmp_path / "i") as index, TantivyIndex(tmp_path / "i") as other:
        with index.bulk():
            assert not index.holds_writer  # taken by the first load, not on entry
            index.load_prepared([index.prepare(doc("a"))])
            assert index.holds_writer
            index.refresh()  # a refresh inside the block does not drop it either
            other.load([doc("b")])  # the writer is busy: other falls back to the outbox
            index.load_prepared([index.prepare(doc("c"))])  # drains b first, same writer
            assert index.holds_writer
            assert sorted(index.ids()) == ["a", "b", "c"]
        assert not index.holds_writer
        other.load([doc("d")])  # now other can take the writer itself
        assert sorted(other.ids()) == ["a", "b", "c", "d"]


def test_load_prepared_falls_back_to_the_outbox_with_the_documents(tmp_path: Path) -> None:
    with TantivyIndex(tmp_path / "i", commit_interval=0.05) as server:
        server.start_indexer()
        server.refresh()
        with TantivyIndex(tmp_path / "i") as cli:
            prepared = [cli.prepare(doc("x", title="Titel x")), cli.prepare(doc("y"))]
            assert cli.load_prepared(prepared) == 2
            cli.refresh()
            assert sorted(cli.ids()) == ["x", "y"]
            hit = cli.get("x")
            assert hit is not None and hit.title == "Titel x"
