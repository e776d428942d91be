"""WORM on both backends: every object of a committed package is retained until the
document's retention end, legal holds go on and off, deletion raises ObjectLockedError."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archive.errors import ObjectLockedError
from archive.model import BuiltPackage
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
from tests.support.s3 import s3_server


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    built: Storage = (
        s3_server().storage() if request.param == "s3" else FsStorage(tmp_path / "store")
    )
    try:
        yield built
    finally:
        built.close()


def test_every_object_retained_and_held(storage: Storage, pkg: BuiltPackage) -> None:
    until = (datetime.now(UTC) + timedelta(days=365 * 10)).replace(microsecond=0)
    store = AipStore(storage)
    store.commit(pkg, retain_until=until)
    keys = list(storage.keys(f"aips/{pkg.aip_id}/"))
    assert len(keys) == len(pkg.files) + 1
    for key in keys:
        stored = storage.stat(key)
        assert stored.retain_until == until and not stored.legal_hold
        with pytest.raises(ObjectLockedError):
            storage.delete(key)
    assert store.set_legal_hold(pkg.aip_id, True) == len(keys)
    assert all(storage.stat(k).legal_hold for k in keys)
    with pytest.raises(ObjectLockedError) as info:
        storage.delete(keys[0])
    assert info.value.legal_hold
    store.set_legal_hold(pkg.aip_id, False)
    assert not any(storage.stat(k).legal_hold for k in keys)
    assert store.verify(pkg.aip_id).ok


def test_hold_without_retention_blocks_delete_until_lifted(storage: Storage) -> None:
    import hashlib
    import io

    data = b"evidence"
    storage.put("loose", io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest())
    storage.set_legal_hold("loose", True)
    with pytest.raises(ObjectLockedError):
        storage.delete("loose")
    storage.set_legal_hold("loose", False)
    storage.delete("loose")
    assert not storage.exists("loose")
