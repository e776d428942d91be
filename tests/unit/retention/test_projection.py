"""The index shows what storage says about holds and retention ends: after a hold or a
recompute, and after a full reindex, which reads the markers in two listings per run (not
per document)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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


def _put(storage: FsStorage, key: str, data: bytes = b"{}") -> None:
    import hashlib
    import io

    storage.put(key, io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest())


def test_holds_of_a_batch_read_the_open_placements_once(tmp_path: Path) -> None:
    """Disposal's last look over a batch: markers per document, open placements (still
    being applied) once for all, a lifting in progress decided by its markers."""
    import json

    from retention import layout
    from retention.projection import holds_in_force, holds_in_force_many

    storage = CountingStorage(tmp_path / "store", Clock())
    _put(storage, layout.held_key("d1", "h1"))
    _put(storage, layout.held_key("d3", "h3"))
    placing = json.dumps({"document_ids": ["d2", "d3"]}).encode()
    _put(storage, layout.open_key("h2"))
    _put(storage, layout.hold_key("h2", "placed.json"), placing)
    lifting = json.dumps({"document_ids": ["d4"]}).encode()
    _put(storage, layout.open_key("h4"))
    _put(storage, layout.hold_key("h4", "placed.json"), lifting)
    _put(storage, layout.hold_key("h4", "lifted.json"))
    docs = ["d1", "d2", "d3", "d4", "d5"]
    mapped: list[str] = []

    def mapper(fn: Callable[[str], frozenset[str]], ids: Sequence[str]) -> list[frozenset[str]]:
        mapped.extend(ids)
        return [fn(i) for i in ids]

    storage.listed.clear()
    found = holds_in_force_many(storage, docs, mapper=mapper)
    expected = {"d1": ("h1",), "d2": ("h2",), "d3": ("h2", "h3"), "d4": (), "d5": ()}
    assert found == expected
    assert mapped == docs
    assert storage.listed.count(layout.OPEN_PREFIX) == 1
    assert sorted(p for p in storage.listed if p.startswith(layout.HELD_PREFIX)) == [
        layout.held_prefix(d) for d in docs
    ]
    assert {d: holds_in_force(storage, d) for d in docs} == expected
