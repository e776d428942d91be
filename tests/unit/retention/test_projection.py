"""The index shows what storage says about holds and retention ends: after a hold or a
recompute, and after a full reindex, which reads the markers in two listings per run (not
per document)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from archive.events import EventLog
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.holds import HoldRegistry
from retention.projection import IndexUpdater, RetentionProjection
from retention.records import RetentionRecords
from search.projection import OwnerKeyer
from search.reconcile import reconcile_index
from search.reindex import reindex
from search.tantivy_index import TantivyIndex
from tests.support.retention_docs import Clock, commit_document, selection

KEYER = OwnerKeyer(b"p" * 32)


class CountingStorage(FsStorage):
    """A real fs storage that counts its listings by prefix."""

    def __init__(self, root: Path, clock: Clock) -> None:
        super().__init__(root, clock=clock)
        self.listed: list[str] = []

    def keys(self, prefix: str) -> Iterator[str]:
        self.listed.append(prefix)
        return super().keys(prefix)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TantivyIndex]:
    with TantivyIndex(tmp_path / "index") as idx:
        yield idx


def test_holds_and_recompute_reach_the_index_and_survive_reindex(
    tmp_path: Path, index: TantivyIndex
) -> None:
    clock = Clock()
    storage = CountingStorage(tmp_path / "store", clock)
    store = AipStore(storage, clock=clock)
    sel = selection("p-1")
    issued = date(2014, 1, 6)
    attests = sorted(
        commit_document(store, sel, document_type="attest", issued_on=issued).aip_id
        for _ in range(6)
    )
    dossier = commit_document(store, sel, document_type="dossier", issued_on=issued).aip_id
    held, longer = attests[0], attests[1]
    projection = RetentionProjection(store, storage)
    updater = IndexUpdater(projection, index, KEYER)
    reindex(projection.snapshot(), index, KEYER)
    due_2025 = date(2025, 1, 1)
    assert set(index.retention_due(due_2025).ids) == set(attests)

    HoldRegistry(storage, store, EventLog(storage), clock=clock, index_updater=updater).place(
        reason="r", mandate="m", placed_by="a", document_ids=[held]
    )
    records = RetentionRecords(storage, store, EventLog(storage), sel, clock=clock, index=updater)
    records.record_trigger(dossier, "closure", date(2021, 1, 4))  # ends 2026: due in 2030
    new = selection("p-2", attest={"retention": "P15Y", "action": "destroy"})
    records.recompute(new)
    index.refresh()
    assert set(index.retention_due(due_2025).ids) == set()  # every attest now ends in 2029
    after = set(index.retention_due(date(2030, 1, 1)).ids)
    assert held not in after and longer in after and dossier in after

    # a fresh index rebuilt from storage alone shows the same, from two marker listings
    with TantivyIndex(tmp_path / "fresh") as fresh:
        storage.listed.clear()
        reindex(projection.snapshot(), fresh, KEYER)
        markers = [p for p in storage.listed if p.startswith(("held/", "retention/"))]
        assert sorted(markers) == ["held/", "retention/"]
        assert set(fresh.retention_due(date(2030, 1, 1)).ids) == after
        assert list(fresh.digests()) == list(index.digests())
    # and reconcile finds the incrementally updated index in sync with storage
    report = reconcile_index(projection.snapshot(), index, KEYER, repair=False)
    assert report.in_sync, report
