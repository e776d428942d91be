from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.model import AipManifest
from search import OwnerKeyer, Query, TantivyIndex, project, reindex
from tests.unit.search.builders import manifest

KEYER = OwnerKeyer(b"r" * 32)


class PackagesInMemory:
    """The three AipStore methods reindex uses, over real manifests."""

    def __init__(self, *manifests: AipManifest) -> None:
        self.packages = {m.aip_id: m for m in manifests}
        self.texts = {m.aip_id: f"tekst van {m.aip_id}: vergunningen" for m in manifests}
        self.listings = 0
        self.on_second_listing: AipManifest | None = None

    def aip_ids(self) -> Iterator[str]:
        self.listings += 1
        if self.listings == 2 and self.on_second_listing is not None:
            self.packages[self.on_second_listing.aip_id] = self.on_second_listing
        yield from sorted(self.packages)

    def manifest(self, aip_id: str) -> AipManifest:
        return self.packages[aip_id]

    def read_text(self, aip_id: str) -> str:
        return self.texts.get(aip_id, "")


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TantivyIndex]:
    with TantivyIndex(tmp_path / "index") as built:
        yield built


def test_rebuilds_an_empty_index_from_storage_alone(index: TantivyIndex) -> None:
    store = PackagesInMemory(*(manifest(f"aip-{i:02d}", minutes=i) for i in range(7)))
    seen: list[int] = []

    stats = reindex(store, index, KEYER, progress=seen.append, batch_size=3)

    assert (stats.indexed, stats.removed) == (7, 0)
    assert seen == [3, 6, 7]
    assert sorted(index.ids()) == sorted(store.packages)
    owner_key = KEYER.key(store.packages["aip-00"].metadata.owner_id)
    page = index.search(Query(owner_key=owner_key, text="vergunning", limit=100))
    assert page.total == 7
    assert page.hits[0].aip_id == "aip-06"  # newest first: created_at is ingested_at


def test_replaces_stale_entries_and_removes_what_storage_lacks(index: TantivyIndex) -> None:
    kept = manifest("kept", title="Nieuwe titel")
    index.submit(
        [
            project(manifest("kept", title="Oude titel"), "oud", KEYER),
            project(manifest("gone"), "weg", KEYER),
        ]
    )
    index.refresh()

    stats = reindex(PackagesInMemory(kept), index, KEYER)

    assert (stats.indexed, stats.removed) == (1, 1)
    assert list(index.ids()) == ["kept"]
    assert index.get("kept").title == "Nieuwe titel"  # type: ignore[union-attr]


def test_a_package_committed_during_the_rebuild_is_not_removed(index: TantivyIndex) -> None:
    store = PackagesInMemory(manifest("a"))
    late = manifest("late")
    store.on_second_listing = late
    index.submit([project(late, "", KEYER)])  # ingest: stored, then indexed, meanwhile

    stats = reindex(store, index, KEYER)

    assert stats.removed == 0
    assert sorted(index.ids()) == ["a", "late"]


def test_batch_size_must_be_positive(index: TantivyIndex) -> None:
    with pytest.raises(ValueError):
        reindex(PackagesInMemory(), index, KEYER, batch_size=0)
