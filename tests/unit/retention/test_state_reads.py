"""What disposal's re-check reads: the package's index file when the root METS declares it
as it is, the root METS and ``dc.xml`` otherwise; either way the same state.

fs only: the cases alter stored bytes behind the storage's back, which S3 cannot do."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

import archive.store
from archive import layout
from archive.events import EventLog
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.records import RetentionRecords
from tests.support.retention_docs import Clock, commit_document, selection


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FsStorage, AipStore, RetentionRecords, str]]:
    clock = Clock()
    storage = FsStorage(tmp_path / "store", clock=clock)
    store = AipStore(storage, clock=clock)
    sel = selection()
    doc = commit_document(store, sel, document_type="attest", issued_on=date(2012, 5, 3))
    records = RetentionRecords(storage, store, EventLog(storage), sel, clock=clock)
    yield storage, store, records, doc.aip_id
    storage.close()


def _index_file(storage: FsStorage, aip_id: str) -> Path:
    return storage.root / "aips" / aip_id / layout.INDEX_FILE_PATH


def _full_read(storage: FsStorage, store: AipStore, aip_id: str) -> tuple[object, str]:
    """The metadata the full way (root METS and dc.xml parsed) and the root METS hash."""
    root = (storage.root / "aips" / aip_id / layout.ROOT_METS).read_bytes()
    return store.metadata(aip_id), hashlib.sha256(root).hexdigest()


def test_the_re_check_parses_no_xml_and_reads_what_the_full_path_reads(
    world: tuple[FsStorage, AipStore, RetentionRecords, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, store, records, aip_id = world
    full = _full_read(storage, store, aip_id)
    expected = records.state(aip_id)

    def no_xml(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the root METS was parsed")

    monkeypatch.setattr(archive.store, "read_root", no_xml)
    assert store.metadata_and_root_sha256(aip_id) == full
    assert records.state(aip_id) == expected
    assert expected.retention_until == date(2022, 5, 3)
    assert expected.root_mets_sha256 == (full[1],)


def test_an_altered_index_file_is_not_trusted(
    world: tuple[FsStorage, AipStore, RetentionRecords, str],
) -> None:
    storage, store, records, aip_id = world
    expected = records.state(aip_id)
    path = _index_file(storage, aip_id)
    raw = path.read_bytes()
    assert b'"retention_until":"2022-05-03"' in raw
    os.chmod(path, 0o644)
    path.write_bytes(
        raw.replace(b'"retention_until":"2022-05-03"', b'"retention_until":"2099-05-03"')
    )

    assert records.state(aip_id) == expected  # from dc.xml: the root METS lists other bytes
    assert store.metadata_and_root_sha256(aip_id) == _full_read(storage, store, aip_id)


def test_a_package_without_index_file_is_read_the_full_way(
    world: tuple[FsStorage, AipStore, RetentionRecords, str],
) -> None:
    storage, store, records, aip_id = world
    expected = records.state(aip_id)
    _index_file(storage, aip_id).unlink()

    assert records.state(aip_id) == expected
    assert store.metadata_and_root_sha256(aip_id) == _full_read(storage, store, aip_id)
