"""Legal holds end to end on fs and on the real Ceph RGW: a held document cannot be deleted
(every object of every version refuses), lifting releases it only when no other hold
applies, a crash mid-placement never leaves a named document unprotected, and the index
shows what storage says."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from archive.errors import ObjectLockedError
from archive.events import EventLog
from archive.package import build_aip
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.errors import HoldConflictError, HoldNotFoundError, InvalidHoldError
from retention.holds import HoldRegistry
from retention.projection import IndexUpdater, RetentionProjection
from retention.records import RetentionRecords
from search.model import Query
from search.projection import OwnerKeyer, project_record
from search.tantivy_index import TantivyIndex
from tests.support.eark import make_input
from tests.support.retention_docs import Clock, commit_document, selection
from tests.support.s3 import s3_server

KEYER = OwnerKeyer(b"k" * 32)
OLD = date(2000, 1, 3)  # attest P10Y: retention ended in 2010, only a hold protects it


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Storage]:
    if request.param == "fs":
        fs = FsStorage(tmp_path / "store", clock=clock)
        yield fs
        fs.close()
    else:
        s3 = s3_server().storage()
        yield s3
        s3.close()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[TantivyIndex]:
    with TantivyIndex(tmp_path / "index") as idx:
        yield idx


class World:
    def __init__(self, storage: Storage, index: TantivyIndex, clock: Clock) -> None:
        self.storage = storage
        self.index = index
        self.clock = clock
        self.store = AipStore(storage, clock=clock)
        self.projection = RetentionProjection(self.store, storage)
        self.updater = IndexUpdater(self.projection, index, KEYER)
        self.selection = selection()
        self.records = RetentionRecords(
            storage, self.store, EventLog(storage), self.selection, clock=clock
        )

    def registry(self, updater: IndexUpdater | None = None) -> HoldRegistry:
        return HoldRegistry(
            self.storage,
            self.store,
            EventLog(self.storage),
            clock=self.clock,
            index=self.index,
            index_updater=updater or self.updater,
        )

    def document(self, *, versions: int = 1, document_type: str = "attest") -> str:
        inp = commit_document(
            self.store, self.selection, document_type=document_type, issued_on=OLD
        )
        previous = inp.aip_id
        for _ in range(versions - 1):
            nxt = dataclasses.replace(
                make_input(aip_id=str(uuid.uuid4())),
                metadata=inp.metadata,
                previous_aip_id=previous,
            )
            self.store.commit_version(build_aip(nxt))
            previous = nxt.aip_id
        doc = inp.aip_id
        self.index.submit([project_record(self.projection.index_record(doc), KEYER)])
        self.index.refresh()
        return doc

    def deletable(self, document_id: str) -> list[str]:
        """Keys of the document a delete would remove (none is attempted on locked ones)."""
        ok = []
        for key in self.store.document_keys(document_id):
            stat = self.storage.stat(key)
            if not stat.legal_hold:
                ok.append(key)
        return ok

    def due(self) -> set[str]:
        self.index.refresh()
        return set(self.index.retention_due(date(2100, 1, 1)).ids)


@pytest.fixture
def world(storage: Storage, index: TantivyIndex, clock: Clock) -> World:
    return World(storage, index, clock)


def test_a_held_document_refuses_every_delete_until_lifted(world: World) -> None:
    doc = world.document(versions=2)
    other = world.document()
    assert world.due() == {doc, other}
    registry = world.registry()
    hold = registry.place(
        reason="Inspection 2026/17",
        mandate="Art. 12 Archiefdecreet",
        placed_by="arch-1",
        document_ids=[doc],
    )
    keys = world.store.document_keys(doc)
    assert len(keys) > 10 and any(k.startswith("versions/") for k in keys)
    assert len({k.split("/")[1] for k in keys if k.startswith("aips/")}) == 2
    for key in keys:  # every object of every version
        assert world.storage.stat(key).legal_hold
        with pytest.raises(ObjectLockedError):
            world.storage.delete(key)
    assert world.records.state(doc).holds == (hold.hold_id,)
    assert not world.records.state(doc).is_due(date(2030, 1, 1))
    assert world.due() == {other}  # the index shows the hold

    world.clock.advance(days=3)
    lifted = registry.lift(hold.hold_id, lifted_by="arch-2", reason="inspection closed")
    assert not lifted.active and lifted.lifted_by == "arch-2"
    assert world.deletable(doc) == keys
    assert world.records.state(doc).is_due(date(2030, 1, 1))
    assert world.due() == {doc, other}
    world.storage.delete(keys[-1])  # allowed: retention ended and no hold remains

    events = EventLog(world.storage).events(doc)
    assert [e.detail.split(";")[0] for e in events] == [
        f"legal hold {hold.hold_id} placed",
        f"legal hold {hold.hold_id} lifted",
    ]
    assert registry.get(hold.hold_id).to_dict()["document_ids"] == [doc]


def test_lifting_one_hold_keeps_another(world: World) -> None:
    doc = world.document()
    registry = world.registry()
    first = registry.place(reason="r1", mandate="m1", placed_by="a", document_ids=[doc])
    second = registry.place(reason="r2", mandate="m2", placed_by="a", document_ids=[doc])
    registry.lift(first.hold_id, lifted_by="b", reason="done")
    assert world.records.state(doc).holds == (second.hold_id,)
    assert world.deletable(doc) == []
    assert doc not in world.due()
    registry.lift(second.hold_id, lifted_by="b", reason="done")
    assert world.records.state(doc).holds == ()
    assert world.deletable(doc) == world.store.document_keys(doc)
    # lifting again finishes nothing new and returns the hold as recorded
    again = registry.lift(first.hold_id, lifted_by="c", reason="other")
    assert again.lifted_by == "b"
    assert {h.hold_id for h in registry.all()} == {first.hold_id, second.hold_id}
    assert registry.all(active_only=True) == []


def test_a_hold_by_query_records_the_ids(world: World) -> None:
    besluit = world.document(document_type="besluit")
    world.document()
    hold = world.registry().place(
        reason="r", mandate="m", placed_by="a", query=Query(document_type="besluit")
    )
    assert hold.document_ids == (besluit,)
    assert hold.query == {"document_type": "besluit"}
    assert world.registry().get(hold.hold_id).document_ids == (besluit,)


def test_bad_requests_report_every_problem(world: World) -> None:
    with pytest.raises(InvalidHoldError) as caught:
        world.registry().place(reason=" ", mandate="", placed_by="a", document_ids=["nope-0000"])
    text = str(caught.value)
    assert "reason" in text and "mandate" in text and "unknown document" in text
    with pytest.raises(HoldNotFoundError):
        world.registry().lift("0e4f5a7c-0000-4000-8000-000000000000", lifted_by="a", reason="r")


class _Crash(Exception):
    pass


class _CrashingUpdater(IndexUpdater):
    def update(self, document_ids: list[str]) -> None:
        raise _Crash


def test_a_crash_mid_placement_protects_and_resumes(world: World) -> None:
    a, b = sorted([world.document(), world.document()])
    crashing = _CrashingUpdater(world.projection, world.index, KEYER)
    registry = world.registry(crashing)
    with pytest.raises(_Crash):
        registry.place(reason="r", mandate="m", placed_by="x", document_ids=[a, b], hold_id="h-1")
    # the record is written, the markers not: disposal still sees the hold on both
    assert world.records.state(a).holds == ("h-1",)
    assert world.records.state(b).holds == ("h-1",)
    assert not world.records.state(b).is_due(date(2030, 1, 1))

    with pytest.raises(HoldConflictError):
        world.registry().place(
            reason="other", mandate="m", placed_by="x", document_ids=[a, b], hold_id="h-1"
        )
    assert world.registry().resume() == ["h-1"]
    assert world.deletable(a) == [] and world.deletable(b) == []
    assert list(world.storage.keys("holds-open/")) == []
    assert world.due() == set()
    # retrying the placement itself is idempotent too
    again = world.registry().place(
        reason="r", mandate="m", placed_by="x", document_ids=[a, b], hold_id="h-1"
    )
    assert again.document_ids == (a, b)
    assert len(EventLog(world.storage).events(a)) == 1
