"""``AipStore.commit`` killed after each of its storage writes, on every backend.

Files are written under retention, so a killed commit cannot always be cleaned up: it must be
finishable. After a kill at write n (a ``put_new`` batch may be cut part-way), reconcile's
two steps (``complete``, else ``discard_incomplete``) must end with either the whole package,
committed and verified with every object under retention and no intent left, or nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from archive.model import BuiltPackage
from archive.package import build_aip
from archive.storage.base import NewBatch, NewObject, Storage
from archive.store import AipStore
from tests.support.eark import make_input


class _Killed(Exception):
    pass


class _Crashing:
    """Forwards to a Storage and raises :class:`_Killed` instead of its n-th write."""

    def __init__(self, inner: Storage, n: int) -> None:
        self._inner = inner
        self._left = n
        self.name = inner.name

    def _tick(self) -> None:
        if self._left == 0:
            raise _Killed
        self._left -= 1

    def put(self, *args: Any, **kwargs: Any) -> Any:
        self._tick()
        return self._inner.put(*args, **kwargs)

    def put_new(self, objects: list[NewObject], **kwargs: Any) -> None:
        for obj in objects:  # one write each, so a kill can cut a batch
            self._tick()
            self._inner.put_new([obj], **kwargs)

    def put_batches(self, batches: list[NewBatch], *, then_delete: Sequence[str] = ()) -> None:
        for batch in batches:  # one write per object, in order, so a kill can cut anywhere
            for obj in batch.objects:
                self._tick()
                self._inner.put_batches([NewBatch([obj], batch.retain_until, batch.exclusive)])
        for key in then_delete:
            self._tick()
            self._inner.delete(key)

    def set_retention(self, *args: Any, **kwargs: Any) -> Any:
        self._tick()
        return self._inner.set_retention(*args, **kwargs)

    def delete(self, key: str) -> None:
        self._tick()
        self._inner.delete(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _package() -> BuiltPackage:
    return build_aip(make_input(aip_id=str(uuid.uuid4())))


def _writes_of_one_commit(storage: Storage, until: datetime) -> int:
    counter = _Crashing(storage, 10**6)
    AipStore(cast(Storage, counter)).commit(_package(), retain_until=until)
    return 10**6 - counter._left


def test_a_commit_killed_after_any_write_is_finished_or_leaves_nothing(
    storage: Storage,
) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    store = AipStore(storage)
    writes = _writes_of_one_commit(storage, until)
    assert writes == 10 + 3  # 10 files, the intent, the root METS, deleting the intent
    outcomes = []
    for n in range(writes):
        pkg = _package()
        with pytest.raises(_Killed):
            AipStore(cast(Storage, _Crashing(storage, n))).commit(pkg, retain_until=until)
        assert not store.is_committed(pkg.aip_id) or n == writes - 1
        store.complete(pkg.aip_id)
        if not store.is_committed(pkg.aip_id):
            store.discard_incomplete(pkg.aip_id)
        keys = list(storage.keys(f"aips/{pkg.aip_id}/"))
        assert list(storage.keys(f"commit-intents/{pkg.aip_id}")) == []
        if store.is_committed(pkg.aip_id):
            assert store.verify(pkg.aip_id).ok
            assert len(keys) == len(pkg.files) + 1
            assert all(storage.stat(k).retain_until for k in keys), n
            assert store.seal(pkg.aip_id) == 0
            outcomes.append("finished")
        else:
            assert keys == [], n
            outcomes.append("nothing")
    # Killed before its intent was stored: nothing is locked and nothing stays; after: finished.
    assert outcomes == ["nothing"] + ["finished"] * (writes - 1)
    assert list(store.incomplete()) == []
