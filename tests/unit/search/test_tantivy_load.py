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
