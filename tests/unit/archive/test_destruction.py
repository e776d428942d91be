"""Destroying documents and batch deletes, on fs (emulated lock, injected clock) and on the
real Ceph RGW (COMPLIANCE lock): all or nothing per lock check, root METS first, every
version, tombstones."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from archive.destruction import (
    Tombstone,
    destroy_document,
    destroy_documents,
    document_keys,
    read_tombstone,
    write_tombstone,
)
from archive.errors import ObjectLockedError
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
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
        clock.now = datetime.now(UTC)
        s3 = s3_server().storage()
        yield s3
        s3.close()


def _put(storage: Storage, key: str, until: datetime | None = None) -> None:
    storage.put(key, io.BytesIO(b"x"), size=1, sha256=_X, retain_until=until)


_X = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"


def test_delete_many_is_all_or_nothing_and_prunes(storage: Storage, clock: Clock) -> None:
    keys = ["a1/b/c/one", "a1/b/c/two", "a1/b/d/three", "a1/e/four"]
    for key in keys:
        _put(storage, key)
    _put(storage, "a1/b/locked", clock() + timedelta(days=2))
    with pytest.raises(ObjectLockedError):
        storage.delete_many([*keys, "a1/b/locked"])
    assert all(storage.exists(k) for k in keys)  # nothing removed
    assert storage.delete_many([*keys, "a1/missing"]) == len(keys)
    assert list(storage.keys("a1/")) == ["a1/b/locked"]
    if isinstance(storage, FsStorage):  # emptied directories are gone, the kept one stays
        assert sorted(p.name for p in (storage.root / "a1").iterdir()) == ["b"]
        assert [p.name for p in (storage.root / "a1" / "b").iterdir() if p.is_dir()] == []
    assert storage.delete_many([]) == 0


def test_destroy_removes_every_version_and_record(storage: Storage, clock: Clock) -> None:
    store = AipStore(storage, clock=clock)
    sel = selection()
    doc = commit_document(store, sel, document_type="attest", issued_on=date(2010, 1, 1))
    other = commit_document(store, sel, document_type="attest", issued_on=date(2010, 1, 2))
    storage.put(f"events/{doc.aip_id}/e.xml", io.BytesIO(b"x"), size=1, sha256=_X)
    # A commit intent a crash left behind: it holds the package's bytes.
    storage.put(f"commit-intents/{doc.aip_id}", io.BytesIO(b"x"), size=1, sha256=_X)
    storage.put(f"retention/{doc.aip_id}/000001.none.json", io.BytesIO(b"x"), size=1, sha256=_X)
    keys = document_keys(storage, doc.aip_id, extra_prefixes=[f"retention/{doc.aip_id}/"])
    assert keys[0] == f"aips/{doc.aip_id}/METS.xml"
    assert f"retention/{doc.aip_id}/000001.none.json" in keys
    assert destroy_document(storage, doc.aip_id, extra_prefixes=[f"retention/{doc.aip_id}/"],
                            clock=clock) == len(keys)  # fmt: skip
    for prefix in ("aips/", "events/", "retention/", "commit-intents/"):
        assert [k for k in storage.keys(prefix) if doc.aip_id in k] == []
    assert store.is_committed(other.aip_id) and store.verify(other.aip_id).ok
    assert destroy_document(storage, doc.aip_id, clock=clock) == 0  # idempotent


def test_a_locked_document_is_refused_and_the_others_go(storage: Storage, clock: Clock) -> None:
    store = AipStore(storage, clock=clock)
    sel = selection()
    today = clock().date()
    young = commit_document(store, sel, document_type="attest", issued_on=today)
    held = commit_document(store, sel, document_type="attest", issued_on=date(2010, 1, 1))
    store.set_document_legal_hold(held.aip_id, True)
    old = commit_document(store, sel, document_type="attest", issued_on=date(2010, 1, 1))
    refused = destroy_documents(
        storage, [(young.aip_id, ()), (held.aip_id, ()), (old.aip_id, ())], clock=clock
    )
    assert set(refused) == {young.aip_id, held.aip_id}
    assert refused[held.aip_id].legal_hold
    assert store.verify(young.aip_id).ok and store.verify(held.aip_id).ok
    assert not store.is_committed(old.aip_id)
    # Directly on the storage: the lock refuses too.
    with pytest.raises(ObjectLockedError):
        storage.delete(f"aips/{young.aip_id}/METS.xml")


def test_tombstone_is_created_once(storage: Storage, clock: Clock) -> None:
    first = Tombstone("d-1", "ab" * 32, "destroy", "p-1", "c-p-1", clock())
    assert write_tombstone(storage, first) == first
    second = Tombstone("d-1", "ab" * 32, "destroy", "p-2", "c-p-2", clock())
    assert write_tombstone(storage, second).proposal_id == "p-1"
    assert read_tombstone(storage, "d-1") == first
    assert read_tombstone(storage, "d-2") is None


def test_listing_a_deep_prefix_starts_in_its_directory(storage: Storage) -> None:
    for key in ("p/b/x", "p/b/y/z", "p/bc/w", "p/a", "q/b/x"):
        _put(storage, key)
    assert list(storage.keys("p/b/")) == ["p/b/x", "p/b/y/z"]
    assert list(storage.keys("p/b")) == ["p/b/x", "p/b/y/z", "p/bc/w"]
    assert list(storage.keys("p/")) == ["p/a", "p/b/x", "p/b/y/z", "p/bc/w"]
    assert list(storage.keys("p/b/x")) == ["p/b/x"]
    assert list(storage.keys("p/b/x/")) == []  # under an object: nothing
    assert list(storage.keys("p/none/")) == []
    assert list(storage.keys("p/../q/")) == []
