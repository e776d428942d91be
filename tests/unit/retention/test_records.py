"""Retention records: state from storage, recompute under a new list, event trigger dates.

Runs on fs (emulated object lock, injected clock) and on the real Ceph RGW (object lock in
COMPLIANCE mode; the S3 clock is real time, so S3 cases use ends in the near future)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from archive import layout as aip_layout
from archive.errors import ObjectLockedError, PackageNotFoundError
from archive.events import EventLog
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.errors import (
    InvalidTriggerError,
    SelectionListVersionReusedError,
    TriggerAlreadyRecordedError,
)
from retention.records import POLICY_EVENT_TYPE, RetentionRecords, lock_datetime
from retention.selection_list import Period, SelectionList
from tests.support.retention_docs import Clock, commit_document, selection
from tests.support.s3 import s3_server


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


def _records(storage: Storage, clock: Clock, sel: SelectionList) -> RetentionRecords:
    return RetentionRecords(
        storage, AipStore(storage, clock=clock), EventLog(storage), sel, clock=clock
    )


def _real_today(storage: Storage, clock: Clock) -> date:
    """S3 locks follow real time: align the test clock with it there."""
    if storage.name == "s3":
        clock.set(date.today())
    return clock().date()


def test_state_reads_the_rule_recorded_at_ingest(storage: Storage, clock: Clock) -> None:
    sel = selection()
    today = _real_today(storage, clock)
    store = AipStore(storage, clock=clock)
    issued = today - timedelta(days=400)
    attest = commit_document(store, sel, document_type="attest", issued_on=issued)
    diploma = commit_document(store, sel, document_type="diploma", issued_on=issued)
    records = _records(storage, clock, sel)

    state = records.state(attest.aip_id)
    assert state.document_type == "attest"
    assert state.action == "destroy"
    assert state.list_version == "t-1"
    assert state.trigger_date == issued
    end = Period(years=10).after(issued)
    assert state.retention_until == end
    assert state.locked_until == end
    assert not state.is_due(today)
    assert state.is_due(end)
    assert records.state(diploma.aip_id).disposable_on() is None
    with pytest.raises(PackageNotFoundError):
        records.state("0e4f5a7c-0000-4000-8000-000000000000")


def test_event_trigger_is_pending_until_delivered(storage: Storage, clock: Clock) -> None:
    sel = selection()
    today = _real_today(storage, clock)
    store = AipStore(storage, clock=clock)
    issued = today - timedelta(days=30)
    doc = commit_document(store, sel, document_type="dossier", issued_on=issued).aip_id
    records = _records(storage, clock, sel)

    pending = records.state(doc)
    assert pending.retention_until is None and pending.trigger_date is None
    floor = Period(years=5).after(issued)
    assert pending.locked_until == floor  # the lower bound: the event is not before issue
    assert not pending.is_due(floor + timedelta(days=10_000))

    with pytest.raises(InvalidTriggerError, match="closure"):
        records.record_trigger(doc, "opening", today)
    with pytest.raises(InvalidTriggerError, match="before the issue date"):
        records.record_trigger(doc, "closure", issued - timedelta(days=1))
    with pytest.raises(InvalidTriggerError, match="future"):
        records.record_trigger(doc, "closure", today + timedelta(days=1))

    closed = today - timedelta(days=2)
    state = records.record_trigger(doc, "closure", closed, by="OVO000001")
    end = Period(years=5).after(closed)
    assert state.trigger_date == closed
    assert state.retention_until == end
    assert state.locked_until == end  # the lock was extended from the floor
    root = aip_layout.aip_key(doc, aip_layout.ROOT_METS)
    assert storage.stat(root).retain_until == lock_datetime(end)

    assert records.record_trigger(doc, "closure", closed) == state  # same date: nothing new
    with pytest.raises(TriggerAlreadyRecordedError):
        records.record_trigger(doc, "closure", closed - timedelta(days=1))
    attest = commit_document(store, sel, document_type="attest", issued_on=issued).aip_id
    with pytest.raises(InvalidTriggerError, match="issue date"):
        records.record_trigger(attest, "closure", today)
    events = EventLog(storage).events(doc)
    assert [e.event_type for e in events] == [POLICY_EVENT_TYPE]
    assert "closure" in events[0].detail


def test_recompute_extends_locks_and_reports_shortened(storage: Storage, clock: Clock) -> None:
    old = selection("t-1")
    today = _real_today(storage, clock)
    store = AipStore(storage, clock=clock)
    issued = today - timedelta(days=10)
    longer = commit_document(store, old, document_type="attest", issued_on=issued).aip_id
    shorter = commit_document(store, old, document_type="besluit", issued_on=issued).aip_id
    same = commit_document(store, old, document_type="diploma", issued_on=issued).aip_id
    records = _records(storage, clock, old)
    new = selection(
        "t-2",
        attest={"retention": "P20Y", "action": "destroy"},
        besluit={"retention": "P2Y", "action": "destroy"},
    )

    report = records.recompute(new, by="archivist-1")
    assert [c.document_id for c in report.extended] == [longer]
    assert [c.document_id for c in report.shortened] == [shorter]
    assert report.unchanged == [same]
    end20 = Period(years=20).after(issued)
    end30 = Period(years=30).after(issued)
    end2 = Period(years=2).after(issued)
    assert report.extended[0].new_until == end20
    assert report.shortened[0].locked_until == end30  # COMPLIANCE is never shortened
    assert report.locks_extended > 5

    # every object of the extended document carries the new lock
    for key in store.document_keys(longer):
        assert storage.stat(key).retain_until == lock_datetime(end20)
    state = records.state(shorter)
    assert (state.retention_until, state.locked_until, state.action) == (end2, end30, "destroy")
    assert state.disposable_on() == end30
    assert records.state(longer).list_version == "t-2"
    with pytest.raises(ObjectLockedError):
        storage.delete(aip_layout.aip_key(longer, aip_layout.ROOT_METS))

    # a re-run (e.g. after a crash) reports the same and writes nothing new
    before = sorted(storage.keys("retention/"))
    again = _records(storage, clock, old).recompute(new)
    assert again.to_dict()["extended"] == report.to_dict()["extended"]
    assert again.to_dict()["shortened"] == report.to_dict()["shortened"]
    assert again.locks_extended == 0
    assert sorted(storage.keys("retention/")) == before
    assert len(EventLog(storage).events(longer)) == 1
    record = json.loads(storage.open(before[0]).__enter__().read())
    assert record["list_version"] == "t-2" and record["by"] == "archivist-1"


def test_a_version_string_names_one_edition(tmp_path: Path, clock: Clock) -> None:
    storage = FsStorage(tmp_path / "s", clock=clock)
    old = selection("t-1")
    records = _records(storage, clock, old)
    with pytest.raises(SelectionListVersionReusedError):
        records.recompute(selection("t-1", attest={"retention": "P1Y", "action": "destroy"}))
    records.recompute(selection("t-2"))
    with pytest.raises(SelectionListVersionReusedError):
        _records(storage, clock, old).recompute(
            selection("t-2", attest={"retention": "P1Y", "action": "destroy"})
        )


def test_recompute_keeps_a_delivered_event_date_and_handles_new_rules(
    tmp_path: Path, clock: Clock
) -> None:
    storage = FsStorage(tmp_path / "s", clock=clock)
    store = AipStore(storage, clock=clock)
    old = selection("t-1")
    issued = date(2025, 6, 1)
    dossier = commit_document(store, old, document_type="dossier", issued_on=issued).aip_id
    attest = commit_document(store, old, document_type="attest", issued_on=issued).aip_id
    records = _records(storage, clock, old)
    records.record_trigger(dossier, "closure", date(2025, 9, 1))
    new = selection(
        "t-2",
        dossier={"retention": "P7Y", "trigger": "event:closure", "action": "destroy"},
        attest={"retention": "P3Y", "trigger": "event:expiry", "action": "destroy"},
    )
    report = records.recompute(new)
    assert [c.document_id for c in report.extended] == [dossier]
    assert report.extended[0].new_until == date(2032, 9, 1)
    assert report.pending == [attest]
    pending = records.state(attest)
    assert pending.retention_until is None
    assert pending.locked_until == date(2035, 6, 1)  # the longer lock stays
    gone = selection("t-3", attest={"retention": "P3Y", "action": "destroy"})
    del_types = {k: v for k, v in gone.rules.items() if k != "dossier"}
    report3 = records.recompute(SelectionList("t-3", del_types))
    assert report3.unknown_type == [dossier]
    assert records.state(dossier).list_version == "t-2"


def test_a_process_on_an_older_list_applies_the_documents_own_edition(
    tmp_path: Path, clock: Clock
) -> None:
    storage = FsStorage(tmp_path / "s", clock=clock)
    store = AipStore(storage, clock=clock)
    old = selection("t-1")
    doc = commit_document(store, old, document_type="dossier", issued_on=date(2025, 1, 6)).aip_id
    new = selection(
        "t-2", dossier={"retention": "P7Y", "trigger": "event:closure", "action": "transfer"}
    )
    _records(storage, clock, old).recompute(new)
    stale = _records(storage, clock, old)  # e.g. a replica not restarted yet
    state = stale.record_trigger(doc, "closure", date(2025, 2, 3))
    assert (state.list_version, state.retention_until, state.action) == (
        "t-2",
        date(2032, 2, 3),
        "transfer",
    )


def test_two_concurrent_recomputes_write_one_record_each(tmp_path: Path, clock: Clock) -> None:
    from concurrent.futures import ThreadPoolExecutor

    storage = FsStorage(tmp_path / "s", clock=clock)
    store = AipStore(storage, clock=clock)
    old = selection("t-1")
    docs = [commit_document(store, old, issued_on=date(2024, 1, 2)).aip_id for _ in range(12)]
    new = selection("t-2", attest={"retention": "P15Y", "action": "destroy"})
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(_records(storage, clock, old).recompute, new) for _ in range(2)]
        reports = [r.result() for r in runs]
    for report in reports:
        assert sorted(c.document_id for c in report.extended) == sorted(docs)
    assert len([k for k in storage.keys("retention/")]) == len(docs)
