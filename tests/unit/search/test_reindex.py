from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from archive.model import AipManifest, IndexRecord
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from search import OwnerKeyer, Query, TantivyIndex, project, reindex
from search.projection import project_record
from search.reconcile import reconcile_index
from search.reindex import projected
from tests.support.eark import make_input
from tests.unit.search.builders import manifest

KEYER = OwnerKeyer(b"r" * 32)


class PackagesInMemory:
    """The two AipStore methods reindex uses, over real manifests (one version each)."""

    def __init__(self, *manifests: AipManifest) -> None:
        self.packages = {m.aip_id: m for m in manifests}
        self.texts = {m.aip_id: f"tekst van {m.aip_id}: vergunningen" for m in manifests}
        self.listings = 0
        self.on_second_listing: AipManifest | None = None

    def document_ids(self) -> Iterator[str]:
        self.listings += 1
        if self.listings == 2 and self.on_second_listing is not None:
            self.packages[self.on_second_listing.aip_id] = self.on_second_listing
        yield from sorted(self.packages)

    def index_record(self, document_id: str) -> IndexRecord:
        found = self.manifest(document_id)
        text = self.read_text(document_id)
        return IndexRecord(document_id, document_id, found.metadata, found.created_at, text)

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


def test_a_document_with_two_versions_is_one_entry_with_the_newest_content(
    tmp_path: Path, index: TantivyIndex
) -> None:
    store = AipStore(FsStorage(tmp_path / "store"))
    first = make_input("1f0d7a3e-2c4b-4d5e-8f60-718293a4b5c6")
    store.commit(build_aip(first))
    newer = replace(
        first,
        aip_id="2a1e8b4f-3d5c-4e6f-9071-8293a4b5c6d7",
        previous_aip_id=first.aip_id,
        metadata=replace(first.metadata, title="Herziene beslissing"),
        text="herziene tekst over bouwvergunningen",
        created_at=first.created_at + timedelta(days=30),
    )
    store.commit_version(build_aip(newer))
    index.submit([project(store.manifest(newer.aip_id), "oud", KEYER)])  # an older rebuild's
    index.refresh()

    stats = reindex(store, index, KEYER, read_workers=2)

    assert (stats.indexed, stats.removed, stats.total) == (1, 1, 1)
    assert list(index.ids()) == [first.aip_id]
    entry = index.get(first.aip_id)
    assert entry is not None and entry.title == "Herziene beslissing"
    assert entry.ingested_at == first.created_at
    owner_key = KEYER.key(first.metadata.owner_id)
    assert index.search(Query(owner_key=owner_key, text="bouwvergunning")).total == 1
    assert index.search(Query(owner_key=owner_key, text="goedgekeurd")).total == 0
    assert reconcile_index(store, index, KEYER).in_sync


def test_an_unversioned_record_projects_like_its_manifest(tmp_path: Path) -> None:
    store = AipStore(FsStorage(tmp_path / "store"))
    store.commit(build_aip(make_input()))
    [doc] = store.document_ids()
    expected = project(store.manifest(doc), store.read_text(doc), KEYER)
    assert project_record(store.index_record(doc), KEYER) == expected


class _TwoArgumentError(Exception):
    """Like some archive errors: cannot be rebuilt from ``args`` (does not survive pickling)."""

    def __init__(self, document_id: str, why: str) -> None:
        super().__init__(f"{document_id}: {why}")


class _BrokenOne(PackagesInMemory):
    def __init__(self, broken: str, *manifests: AipManifest) -> None:
        super().__init__(*manifests)
        self.broken = broken

    def index_record(self, document_id: str) -> IndexRecord:
        if document_id == self.broken:
            raise _TwoArgumentError(document_id, "unreadable")
        return super().index_record(document_id)


def test_reader_processes_give_the_same_documents_in_the_same_order() -> None:
    # More documents than one task and than the window of tasks in flight.
    store = PackagesInMemory(*(manifest(f"aip-{i:03d}", minutes=i) for i in range(700)))
    ids = sorted(store.packages)

    in_processes = list(projected(store, KEYER, ids, processes=2))

    assert in_processes == list(projected(store, KEYER, ids))
    assert [d.aip_id for d in in_processes] == ids


def test_with_reader_processes_a_broken_package_raises_its_own_error_and_checkpoints(
    tmp_path: Path, index: TantivyIndex
) -> None:
    store = _BrokenOne("aip-150", *(manifest(f"aip-{i:03d}", minutes=i) for i in range(200)))
    checkpoint = tmp_path / "reindex.checkpoint"

    with pytest.raises(_TwoArgumentError, match="aip-150: unreadable"):
        reindex(store, index, KEYER, batch_size=50, checkpoint=checkpoint, processes=2)

    assert json.loads(checkpoint.read_text())["after"] == "aip-149"
    store.broken = ""
    stats = reindex(store, index, KEYER, batch_size=50, checkpoint=checkpoint, processes=2)
    assert (stats.resumed_after, stats.indexed) == ("aip-149", 50)
    assert sorted(index.ids()) == sorted(store.packages)
