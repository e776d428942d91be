from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from archive.model import AipManifest, IndexRecord
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from search import OwnerKeyer, Query, TantivyIndex, project, reindex
from search.model import Hit, IdPage, IndexDocument, Page
from search.projection import document_digest, project_record
from search.reconcile import reconcile_index
from search.reindex import PreparingIndex, projected
from tests.support.eark import make_input
from tests.support.legacy_packages import without_index_file
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


def test_packages_with_and_without_index_files_project_alike(
    tmp_path: Path, index: TantivyIndex
) -> None:
    # Packages archived before index files existed are read the full way (root METS, dc.xml)
    store = AipStore(FsStorage(tmp_path / "store"))
    new = build_aip(make_input())
    old = without_index_file(build_aip(make_input("0b7d1f0e-3c2a-4e59-9d84-1a2b3c4d5e6f")))
    store.commit(new)
    store.commit(old)
    assert reindex(store, index, KEYER).indexed == 2
    for pkg in (new, old):
        expected = project(store.manifest(pkg.aip_id), store.read_text(pkg.aip_id), KEYER)
        assert project_record(store.index_record(pkg.aip_id), KEYER) == expected
    assert dict(index.digests()) == {
        a: document_digest(project(store.manifest(a), store.read_text(a), KEYER))
        for a in (new.aip_id, old.aip_id)
    }


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
    # More documents than one task (256) and than the window of tasks in flight (4 tasks).
    store = PackagesInMemory(*(manifest(f"aip-{i:04d}", minutes=i) for i in range(1100)))
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


class _DiesInReader(PackagesInMemory):
    """A package whose read kills the reader process (as the OOM killer would)."""

    def __init__(self, deadly: str, *manifests: AipManifest) -> None:
        super().__init__(*manifests)
        self.deadly = deadly
        self.parent = os.getpid()

    def index_record(self, document_id: str) -> IndexRecord:
        if document_id == self.deadly and os.getpid() != self.parent:
            os._exit(3)
        return super().index_record(document_id)


def _children() -> set[int]:
    """This process's child processes, running or not yet reaped (zombies are listed too).
    Other tests may leave children of their own (a storage's removal worker until its
    storage is collected), so a test compares the set before and after."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as fh:
            found.update(int(pid) for pid in fh.read().split())
    return found


def test_a_reader_process_that_dies_fails_the_rebuild_and_leaves_no_process() -> None:
    store = _DiesInReader("aip-0600", *(manifest(f"aip-{i:04d}", minutes=i) for i in range(900)))
    ids = sorted(store.packages)
    before = _children()
    with pytest.raises(ChildProcessError):
        list(projected(store, KEYER, ids, processes=2))
    assert _children() <= before


def test_readers_abandoned_midway_are_stopped_and_reaped() -> None:
    store = PackagesInMemory(*(manifest(f"aip-{i:04d}", minutes=i) for i in range(2000)))
    before = _children()
    documents = projected(store, KEYER, sorted(store.packages), processes=2)
    assert [next(documents).aip_id for _ in range(300)][-1] == "aip-0299"
    assert len(_children() - before) == 2  # the readers were running
    documents.close()  # type: ignore[attr-defined]
    assert _children() <= before


class _Varied(PackagesInMemory):
    """Texts that exercise the analysis: inflections, diacritics, owner numbers, overlong
    tokens, other scripts."""

    def __init__(self, count: int) -> None:
        owners = ["85073003328", "90010112345", "01020300177"]
        super().__init__(
            *(
                manifest(f"aip-{i:04d}", minutes=i, owner_id=owners[i % 3], title=f"Besluit {i}")
                for i in range(count)
            )
        )
        words = ["vergunningen", "besluiten", "Café", "coöperatie", "⑴", "naïef", "straße"]
        for i, aip_id in enumerate(sorted(self.packages)):
            self.texts[aip_id] = (
                f"{words[i % 7]} {words[(i * 3) % 7]} nummer {i} 85073003328 "
                f"{'x' * 70} uniek{i} Ëlla"
            )


def _queries(owner_key: str) -> list[Query]:
    return [
        Query(text="vergunning", limit=100),
        Query(text="naief besluiten", limit=100, sort="relevance"),
        Query(text="cooperatie cafe", limit=100),
        Query(text="uniek417", limit=10),
        Query(owner_key=owner_key, limit=100),
        Query(owner_key=owner_key, text="ella", limit=100),
    ]


def test_reader_processes_build_the_same_index_as_one_process_and_as_load(
    tmp_path: Path,
) -> None:
    # The analysis runs in the reader processes (TantivyIndex.prepare) with processes=2, in
    # this process with processes=1, and inside TantivyIndex.load for the plain path: the
    # entries, the digests and every search answer (scores included) must be the same.
    store = _Varied(700)
    ids = sorted(store.packages)
    owner_key = KEYER.key("85073003328")
    with (
        TantivyIndex(tmp_path / "one") as one,
        TantivyIndex(tmp_path / "two") as two,
        TantivyIndex(tmp_path / "plain") as plain,
    ):
        reindex(store, one, KEYER, batch_size=300)
        reindex(store, two, KEYER, batch_size=300, processes=2)
        plain.load(projected(store, KEYER, ids))
        plain.refresh()

        assert list(one.digests()) == list(two.digests()) == list(plain.digests())
        assert [d for _, d in one.digests()] == [
            document_digest(d) for d in projected(store, KEYER, ids)
        ]
        for query in _queries(owner_key):
            pages = [index.search(query) for index in (one, two, plain)]
            assert pages[0].total > 0, query
            assert pages[0] == pages[1] == pages[2], query
        assert reconcile_index(store, two, KEYER).in_sync


def test_a_rebuild_keeps_one_writer_for_all_its_batches_and_releases_it(
    index: TantivyIndex,
) -> None:
    store = PackagesInMemory(*(manifest(f"aip-{i:02d}", minutes=i) for i in range(9)))
    held: list[bool] = []

    reindex(store, index, KEYER, batch_size=3, progress=lambda _: held.append(index.holds_writer))

    assert held == [True, True, True]  # kept between the batches, not reopened
    assert not index.holds_writer  # and released at the end: a server can take it
    assert sorted(index.ids()) == sorted(store.packages)


class _PlainIndex:
    """An Index without the optional PreparingIndex steps (like OpenSearchIndex)."""

    def __init__(self, inner: TantivyIndex) -> None:
        self.inner = inner
        self.name = inner.name
        self.loaded: list[object] = []

    def submit(self, documents: Sequence[IndexDocument]) -> None:
        self.inner.submit(documents)

    def load(self, documents: Iterable[IndexDocument]) -> int:
        docs = list(documents)
        self.loaded.extend(docs)
        return self.inner.load(docs)

    def remove(self, aip_ids: Sequence[str]) -> None:
        self.inner.remove(aip_ids)

    def refresh(self) -> None:
        self.inner.refresh()

    def search(self, query: Query) -> Page:
        return self.inner.search(query)

    def get(self, aip_id: str) -> Hit | None:
        return self.inner.get(aip_id)

    def retention_due(self, before: date, *, after: str | None = None, limit: int = 1000) -> IdPage:
        return self.inner.retention_due(before, after=after, limit=limit)

    def ids(self) -> Iterable[str]:
        return self.inner.ids()

    def digests(self) -> Iterable[tuple[str, str]]:
        return self.inner.digests()

    def clear(self) -> None:
        self.inner.clear()

    def close(self) -> None:
        self.inner.close()


def test_a_backend_without_prepare_is_fed_plain_documents(index: TantivyIndex) -> None:
    store = PackagesInMemory(*(manifest(f"aip-{i:02d}", minutes=i) for i in range(5)))
    plain = _PlainIndex(index)
    assert not isinstance(plain, PreparingIndex) and isinstance(index, PreparingIndex)

    stats = reindex(store, plain, KEYER, batch_size=2, processes=2)

    assert stats.indexed == 5
    assert all(isinstance(d, IndexDocument) for d in plain.loaded)
    assert sorted(index.ids()) == sorted(store.packages)
