"""The Storage contract: every backend must pass every test here, using only the protocol."""

from __future__ import annotations

import hashlib
import io
import random
import threading
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archive.errors import (
    ArchiveError,
    IntegrityError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
)
from archive.storage.base import ClaimsBeforeStoring, NewBatch, NewObject, Storage
from tests.contract.storage.conftest import Backend


def put(storage: Storage, key: str, data: bytes, **kwargs: Any) -> None:
    sha = hashlib.sha256(data).hexdigest()
    storage.put(key, io.BytesIO(data), size=len(data), sha256=sha, **kwargs)


def read(storage: Storage, key: str) -> bytes:
    with storage.open(key) as handle:
        return handle.read()


class _Pattern(io.RawIOBase):
    """``size`` deterministic bytes produced on the fly (never held in memory)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = bytes(range(256)) * 4096  # 1 MiB

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left, len(self._block))
        buffer[:n] = self._block[:n]
        self._left -= n
        return n


def test_round_trip(storage: Storage) -> None:
    data = b"%PDF-1.7 \x00\xff binary"
    put(storage, "aips/a/representations/rep1/data/document.pdf", data)
    assert read(storage, "aips/a/representations/rep1/data/document.pdf") == data
    st = storage.stat("aips/a/representations/rep1/data/document.pdf")
    assert (st.size, st.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert storage.exists("aips/a/representations/rep1/data/document.pdf")
    put(storage, "empty", b"")
    assert read(storage, "empty") == b""


def test_streams_64_mib_with_bounded_memory(storage: Storage) -> None:
    size = 64 * 1024 * 1024
    digest = hashlib.sha256()
    source = io.BufferedReader(_Pattern(size))
    while chunk := source.read(1024 * 1024):
        digest.update(chunk)
    tracemalloc.start()
    try:
        storage.put(
            "big/object",
            io.BufferedReader(_Pattern(size)),
            size=size,
            sha256=digest.hexdigest(),
        )
        check = hashlib.sha256()
        with storage.open("big/object") as handle:
            while chunk := handle.read(1024 * 1024):
                check.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert check.hexdigest() == digest.hexdigest()
    assert peak < 16 * 1024 * 1024, f"peak Python memory {peak} bytes for a 64 MiB object"


def test_missing_key(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError):
        storage.open("no/such/key")
    with pytest.raises(ObjectNotFoundError):
        storage.stat("no/such/key")
    assert not storage.exists("no/such/key")
    storage.delete("no/such/key")  # not an error


def test_prefix_listing_is_lexicographic(storage: Storage) -> None:
    # "." (0x2E) < "/" (0x2F) < "0" (0x30): a naive directory walk gets these wrong.
    keys = ["a/b/c", "a/b.c", "a/bc", "a/b-c/d", "a/a", "b/a", "a0", "a.z"]
    for key in random.Random(7).sample(keys, len(keys)):
        put(storage, key, key.encode())
    assert list(storage.keys("")) == sorted(keys)
    assert list(storage.keys("a/")) == sorted(k for k in keys if k.startswith("a/"))
    assert list(storage.keys("a/b")) == sorted(k for k in keys if k.startswith("a/b"))
    assert list(storage.keys("a/b/")) == ["a/b/c"]
    assert list(storage.keys("zzz")) == []


def test_conditional_create(storage: Storage) -> None:
    put(storage, "once", b"first", if_absent=True)
    with pytest.raises(ObjectExistsError):
        put(storage, "once", b"second", if_absent=True)
    assert read(storage, "once") == b"first"


def test_concurrent_conditional_creates_have_one_winner(storage: Storage) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            put(storage, "contended", f"writer-{n}".encode(), if_absent=True)
            outcomes.append(f"won-{n}")
        except ObjectExistsError:
            outcomes.append("lost")

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("lost") == 7
    assert read(storage, "contended") == f"writer-{winners[0].removeprefix('won-')}".encode()


@pytest.mark.parametrize(
    "size_delta, sha", [(0, "0" * 64), (-1, None), (1, None)], ids=["hash", "short", "long"]
)
def test_integrity_mismatch_stores_nothing(
    storage: Storage, size_delta: int, sha: str | None
) -> None:
    data = b"payload bytes"
    with pytest.raises(IntegrityError):
        storage.put(
            "checked",
            io.BytesIO(data),
            size=len(data) + size_delta,
            sha256=sha or hashlib.sha256(data).hexdigest(),
        )
    assert not storage.exists("checked")
    assert list(storage.keys("")) == []


@pytest.mark.parametrize("size_delta", [0, -1, 1], ids=["hash", "short", "long"])
def test_integrity_mismatch_of_a_large_object_stores_nothing(
    storage: Storage, size_delta: int
) -> None:
    """Large objects are hashed while they stream (fs: on a second thread, overlapping the
    write); a mismatch found only at the end still stores nothing."""
    data = bytes(range(256)) * (40 * 1024 + 3)  # ~10 MiB, not a whole number of chunks
    good = hashlib.sha256(data).hexdigest()
    wrong = good[:-1] + ("0" if good[-1] != "0" else "1")
    with pytest.raises(IntegrityError):
        storage.put(
            "checked/large",
            io.BytesIO(data),
            size=len(data) + size_delta,
            sha256=wrong if size_delta == 0 else good,
        )
    assert not storage.exists("checked/large")
    assert list(storage.keys("")) == []


def test_retention_refuses_delete(storage: Storage) -> None:
    until = datetime.now(UTC) + timedelta(days=1)
    put(storage, "kept", b"keep me", retain_until=until)
    with pytest.raises(ObjectLockedError) as info:
        storage.delete("kept")
    assert info.value.retain_until is not None
    assert abs(info.value.retain_until - until) < timedelta(seconds=1)
    assert storage.stat("kept").retain_until is not None
    assert read(storage, "kept") == b"keep me"


def _new(key: str, data: bytes) -> NewObject:
    return NewObject(key, data, hashlib.sha256(data).hexdigest())


def test_put_new_stores_a_batch_under_retention(storage: Storage) -> None:
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    objects = [_new(f"pkg/{d}/f{i}", f"{d}{i}".encode() * 100) for d in "ab" for i in range(4)]
    storage.put_new(objects, retain_until=until)
    assert list(storage.keys("pkg/")) == sorted(o.key for o in objects)
    for obj in objects:
        assert read(storage, obj.key) == obj.data
        st = storage.stat(obj.key)
        assert (st.size, st.sha256, st.retain_until) == (len(obj.data), obj.sha256, until)
    with pytest.raises(ObjectLockedError):
        storage.delete(objects[0].key)
    storage.put_new(objects[:2], retain_until=until)  # an identical retry is not an error
    assert read(storage, objects[0].key) == objects[0].data


def test_put_new_checks_every_hash_before_storing_anything(storage: Storage) -> None:
    good = _new("batch/good", b"good")
    bad = NewObject("batch/bad", b"bad", hashlib.sha256(b"other").hexdigest())
    with pytest.raises(IntegrityError):
        storage.put_new([good, bad])
    assert list(storage.keys("batch/")) == []
    storage.put_new([])  # nothing to do


def test_put_batches_stores_every_batch_with_its_retention_then_deletes(
    storage: Storage,
) -> None:
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    intent = _new("intents/p1", b"redo record")
    files = [_new(f"pkg/p1/{d}/f{i}", f"{d}{i}".encode() * 50) for d in "ab" for i in range(3)]
    marker = _new("pkg/p1/METS.xml", b"<mets/>")
    storage.put_batches(
        [
            NewBatch([intent], redo=True),
            NewBatch(files, until),
            NewBatch([marker], until, exclusive=True),
        ],
        then_delete=[intent.key],
    )
    assert list(storage.keys("intents/")) == []  # deleted (or, fs, never needed)
    assert list(storage.keys("pkg/")) == sorted(o.key for o in [*files, marker])
    for obj in [*files, marker]:
        assert read(storage, obj.key) == obj.data
        st = storage.stat(obj.key)
        assert (st.size, st.sha256, st.retain_until) == (len(obj.data), obj.sha256, until)
    with pytest.raises(ObjectLockedError):
        storage.delete(marker.key)
    # Without retention nothing is locked; an exclusive batch meets an existing key.
    storage.put_batches([NewBatch([_new("plain/a/x", b"x")]), NewBatch([_new("plain/m", b"m")])])
    storage.delete("plain/a/x")
    with pytest.raises(ObjectExistsError):
        storage.put_batches([NewBatch([marker], exclusive=True)])


def test_put_batches_checks_every_hash_before_storing_anything(storage: Storage) -> None:
    good = _new("pb/a/good", b"good")
    bad = NewObject("pb/a/bad", b"bad", hashlib.sha256(b"other").hexdigest())
    with pytest.raises(IntegrityError):
        storage.put_batches([NewBatch([good]), NewBatch([_new("pb/b/x", b"x")]), NewBatch([bad])])
    assert list(storage.keys("")) == []


def test_put_batches_stops_at_an_exclusive_conflict(storage: Storage) -> None:
    """After the batches before it (or, a backend that claims exclusive keys first, before
    anything: its first batch, stored at once with the claim, is removed again)."""
    storage.put_batches([NewBatch([_new("pc/p1/METS.xml", b"first")], exclusive=True)])
    files = [_new("pc/p1/data/a", b"a"), _new("pc/p1/data/b", b"b")]
    with pytest.raises(ObjectExistsError):
        storage.put_batches(
            [
                NewBatch([_new("pc/intent", b"intent")]),
                NewBatch(files),
                NewBatch([_new("pc/p1/METS.xml", b"second")], exclusive=True),
                NewBatch([_new("pc/after", b"never")]),
            ]
        )
    assert read(storage, "pc/p1/METS.xml") == b"first"
    if isinstance(storage, ClaimsBeforeStoring):
        assert list(storage.keys("pc/")) == ["pc/p1/METS.xml"]
    else:
        assert list(storage.keys("pc/")) == [
            "pc/intent",
            "pc/p1/METS.xml",
            "pc/p1/data/a",
            "pc/p1/data/b",
        ]
    # A redo batch first goes out with the claim on a backend that claims first: removed too.
    with pytest.raises(ObjectExistsError):
        storage.put_batches(
            [
                NewBatch([_new("pc/redo", b"redo")], redo=True),
                NewBatch([_new("pc/p1/METS.xml", b"third")], exclusive=True),
            ]
        )
    assert read(storage, "pc/p1/METS.xml") == b"first"
    if isinstance(storage, ClaimsBeforeStoring):
        assert list(storage.keys("pc/")) == ["pc/p1/METS.xml"]


def test_retention_can_be_extended_not_shortened(storage: Storage) -> None:
    # Whole seconds: a backend may round retention up to a second (never down).
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    put(storage, "later-locked", b"content")
    assert storage.stat("later-locked").retain_until is None
    storage.set_retention("later-locked", until)
    with pytest.raises(ObjectLockedError):
        storage.delete("later-locked")
    longer = until + timedelta(days=1)
    assert storage.set_retention("later-locked", longer).retain_until == longer
    with pytest.raises(ObjectLockedError):
        storage.set_retention("later-locked", until)
    assert storage.stat("later-locked").retain_until == longer


def test_legal_hold_refuses_delete_until_lifted(storage: Storage) -> None:
    put(storage, "held", b"evidence")
    assert storage.set_legal_hold("held", True).legal_hold
    with pytest.raises(ObjectLockedError) as info:
        storage.delete("held")
    assert info.value.legal_hold
    assert storage.stat("held").legal_hold
    storage.set_legal_hold("held", False)
    storage.delete("held")
    assert not storage.exists("held")
    with pytest.raises(ObjectNotFoundError):
        storage.set_legal_hold("held", True)


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "../up", "a/./b", ".hidden", "a b"])
def test_invalid_keys_are_archive_errors(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKeyError):
        put(storage, key, b"x")
    with pytest.raises(InvalidKeyError):
        storage.open(key)


def test_no_foreign_exception_escapes_when_backend_is_down(
    storage: Storage, backend: Backend, tmp_path: Path
) -> None:
    put(storage, "before/down", b"x")
    backend.breaks(storage, tmp_path)
    calls: list[Callable[[], object]] = [
        lambda: put(storage, "after/down", b"y"),
        lambda: read(storage, "before/down"),
        lambda: storage.stat("before/down"),
        lambda: storage.exists("before/down"),
        lambda: list(storage.keys("")),
        lambda: storage.delete("before/down"),
        lambda: storage.set_legal_hold("before/down", True),
        lambda: storage.set_retention("before/down", datetime.now(UTC) + timedelta(days=1)),
    ]
    for call in calls:
        try:
            call()
        except ArchiveError:
            continue
        except Exception as exc:  # the point of the test: anything not ours fails
            pytest.fail(f"foreign exception escaped: {type(exc).__name__}: {exc}")


def test_byte_ranges(storage: Storage) -> None:
    data = bytes(range(256)) * 64
    put(storage, "ranged", data)
    with storage.open("ranged", offset=1000, length=500) as handle:
        assert handle.read() == data[1000:1500]
    with storage.open("ranged", offset=16000) as handle:
        assert handle.read() == data[16000:]
    with storage.open("ranged", offset=5, length=0) as handle:
        assert handle.read() == b""


def test_retention_at_put_is_reported_and_past_retention_protects_nothing(
    storage: Storage,
) -> None:
    until = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    put(storage, "kept/at-put", b"x", retain_until=until)
    assert storage.stat("kept/at-put").retain_until == until
    put(storage, "expired", b"old", retain_until=datetime.now(UTC) - timedelta(days=1))
    storage.delete("expired")
    assert not storage.exists("expired")


def test_overwrite_replaces_unlocked_and_refuses_locked(storage: Storage) -> None:
    put(storage, "doc", b"one")
    put(storage, "doc", b"two")
    assert read(storage, "doc") == b"two"
    assert storage.stat("doc").sha256 == hashlib.sha256(b"two").hexdigest()
    storage.set_legal_hold("doc", True)
    with pytest.raises(ObjectLockedError):
        put(storage, "doc", b"three")
    storage.set_legal_hold("doc", False)
    storage.delete("doc")  # every version goes
    assert not storage.exists("doc")
    assert list(storage.keys("")) == []
    put(storage, "doc", b"again", if_absent=True)  # a deleted key can be created anew
