"""FsStorage specifics: atomic publication, one winner per conditional create, emulated locks.

Behaviour every backend shares is in tests/contract/storage; these tests look at the files.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from archive.errors import (
    InvalidKeyError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
    StorageUnavailableError,
)
from archive.storage import fs as fs_module
from archive.storage._fsio import start_writeback
from archive.storage.base import NewBatch, NewObject
from archive.storage.fs import FsStorage
from tests.unit.archive.conftest import Clock


def _put(fs: FsStorage, key: str, data: bytes, **kwargs: object) -> None:
    sha = hashlib.sha256(data).hexdigest()
    fs.put(key, io.BytesIO(data), size=len(data), sha256=sha, **kwargs)  # type: ignore[arg-type]


def _new(key: str, data: bytes) -> NewObject:
    return NewObject(key, data, hashlib.sha256(data).hexdigest())


class _Failing(io.RawIOBase):
    """Yields ``good`` bytes, then raises ``exc`` (a client or disk failing mid-stream)."""

    def __init__(self, good: int, exc: Exception) -> None:
        self._left = good
        self._exc = exc

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            raise self._exc
        n = min(len(buffer), self._left)
        buffer[:n] = b"x" * n
        self._left -= n
        return n


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("exc", [OSError("disk gone"), RuntimeError("client went away")])
def test_put_failing_mid_stream_leaves_nothing(fs: FsStorage, exc: Exception) -> None:
    stream = io.BufferedReader(_Failing(3 * 1024 * 1024, exc))
    expected = StorageUnavailableError if isinstance(exc, OSError) else RuntimeError
    with pytest.raises(expected):
        fs.put("aips/x/big.bin", stream, size=10 * 1024 * 1024, sha256="0" * 64)
    assert not fs.exists("aips/x/big.bin")
    assert list(fs.keys("")) == []
    assert _files(fs.root) == []


@pytest.mark.parametrize("size", [8 * 1024 * 1024 - 1, 20 * 1024 * 1024 + 5])
def test_a_big_put_starts_writeback_of_what_it_wrote_in_order(
    fs: FsStorage, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    ranges: list[tuple[int, int]] = []

    def record(fd: int, offset: int, length: int) -> None:
        assert os.fstat(fd).st_size >= offset + length  # only bytes already written
        ranges.append((offset, length))

    monkeypatch.setattr(fs_module, "_start_writeback", record)
    data = os.urandom(size)
    _put(fs, "aips/x/big.bin", data)
    with fs.open("aips/x/big.bin") as handle:
        assert handle.read() == data
    if size < fs_module._OVERLAP_BYTES:
        assert ranges == []  # a small object is synced at once
        return
    ends = [offset + length for offset, length in ranges]
    assert [offset for offset, _ in ranges] == [0, *ends[:-1]]  # contiguous, from the start
    assert size - ends[-1] < fs_module._OVERLAP_BYTES  # the fsync is left the tail only


def test_open_reads_small_and_large_objects_whole_and_in_ranges(fs: FsStorage) -> None:
    for size in (0, 5, fs_module._SMALL_READ, fs_module._SMALL_READ + 1, 3 * 1024 * 1024):
        data = os.urandom(size)
        _put(fs, f"o/{size}", data)
        for offset, length in ((0, None), (3, None), (size // 2, 7), (size + 10, None)):
            with fs.open(f"o/{size}", offset=offset, length=length) as handle:
                end = None if length is None else offset + length
                assert handle.read() == data[offset:end], (size, offset, length)


def test_open_refuses_prefixes_and_keys_below_objects(fs: FsStorage) -> None:
    _put(fs, "a/b/c", b"x")
    for key in ("a", "a/b", "a/b/c/d", "missing"):
        with pytest.raises(ObjectNotFoundError):
            fs.open(key)


def test_a_small_object_that_grew_after_its_stat_is_read_whole(
    fs: FsStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(1000)
    _put(fs, "grown", data)
    real = os.fstat

    def stale(fd: int) -> os.stat_result:  # as if the file had grown after the fstat
        fields = list(real(fd))
        fields[6] -= 10  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", stale)
    with fs.open("grown") as handle:
        assert handle.read() == data


def test_start_writeback_is_only_a_hint(tmp_path: Path) -> None:
    with open(tmp_path / "f", "wb") as handle:
        handle.write(b"x" * 4096)
        handle.flush()
        start_writeback(handle.fileno(), 0, 4096)
        start_writeback(handle.fileno(), 1 << 40, 4096)  # beyond the end: nothing to do
    start_writeback(-1, 0, 1)  # a bad descriptor is ignored, not raised


def test_failed_overwrite_keeps_the_old_object(fs: FsStorage) -> None:
    _put(fs, "a/b", b"old")
    with pytest.raises(StorageUnavailableError):
        fs.put("a/b", io.BufferedReader(_Failing(2, OSError("eio"))), size=3, sha256="0" * 64)
    with fs.open("a/b") as handle:
        assert handle.read() == b"old"


def test_conditional_create_race_has_exactly_one_winner(fs: FsStorage) -> None:
    barrier = threading.Barrier(16)
    winners: list[int] = []
    losers: list[int] = []

    def attempt(n: int) -> None:
        data = f"writer {n}".encode() * 1000
        barrier.wait()
        try:
            _put(fs, "race/key", data, if_absent=True)
            winners.append(n)
        except ObjectExistsError:
            losers.append(n)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 15
    with fs.open("race/key") as handle:
        assert handle.read() == f"writer {winners[0]}".encode() * 1000
    assert (
        fs.stat("race/key").sha256
        == hashlib.sha256(f"writer {winners[0]}".encode() * 1000).hexdigest()
    )
    assert _files(fs.root) == ["race/key"]  # metadata is an attribute: no sidecar file


def test_sidecars_and_temp_files_are_invisible(fs: FsStorage) -> None:
    _put(fs, "p/q", b"1")
    (fs.root / "p" / ".q.1234.tmp").write_bytes(b"half")
    assert list(fs.keys("")) == ["p/q"]
    with pytest.raises(InvalidKeyError):
        fs.open("p/.q.meta")


def test_lock_is_refused_until_the_date_then_allowed(fs: FsStorage, clock: Clock) -> None:
    until = clock.now + timedelta(days=365)
    _put(fs, "k", b"data", retain_until=until)
    with pytest.raises(ObjectLockedError) as info:
        fs.delete("k")
    assert info.value.retain_until == until
    with pytest.raises(ObjectLockedError):
        _put(fs, "k", b"overwrite")
    clock.now = until + timedelta(seconds=1)
    fs.delete("k")
    assert not fs.exists("k")
    assert _files(fs.root) == []


def test_retention_is_recorded_on_the_file_itself(fs: FsStorage) -> None:
    until = fs._clock() + timedelta(days=1)
    _put(fs, "d/e", b"first", retain_until=until)
    meta = json.loads(os.getxattr(fs.root / "d" / "e", "user.kluis.meta"))
    assert meta["retain_until"] == until.isoformat()
    assert meta["sha256"] == hashlib.sha256(b"first").hexdigest()
    fs.set_legal_hold("d/e", True)
    assert json.loads(os.getxattr(fs.root / "d" / "e", "user.kluis.meta"))["legal_hold"]


def test_a_file_replaced_behind_our_back_has_its_hash_recomputed(fs: FsStorage) -> None:
    _put(fs, "d/e", b"first", retain_until=fs._clock() + timedelta(days=1))
    (fs.root / "d" / "e").unlink()  # an operator replaces the file: no metadata comes along
    (fs.root / "d" / "e").write_bytes(b"second")
    st = fs.stat("d/e")
    assert st.sha256 == hashlib.sha256(b"second").hexdigest()
    assert st.retain_until is None


def test_legacy_sidecars_are_still_read_and_dropped_on_update(fs: FsStorage) -> None:
    """Objects written before metadata moved into the attribute keep their retention."""
    until = fs._clock() + timedelta(days=1)
    path = fs.root / "old" / "obj"
    path.parent.mkdir()
    path.write_bytes(b"legacy")
    legacy = {
        "ino": path.stat().st_ino,
        "size": 6,
        "sha256": hashlib.sha256(b"legacy").hexdigest(),
        "retain_until": until.isoformat(),
        "legal_hold": False,
    }
    (path.parent / ".obj.meta").write_text(json.dumps(legacy))
    assert fs.stat("old/obj").retain_until == until
    with pytest.raises(ObjectLockedError):
        fs.delete("old/obj")
    fs.set_retention("old/obj", until + timedelta(days=1))
    assert _files(fs.root) == ["old/obj"]
    assert fs.stat("old/obj").retain_until == until + timedelta(days=1)
    # A sidecar naming another inode (the data was replaced) is not trusted.
    other = fs.root / "old" / "other"
    other.write_bytes(b"x")
    (other.parent / ".other.meta").write_text(json.dumps(legacy))
    assert fs.stat("old/other").retain_until is None


def test_put_new_batches_and_refuses_other_bytes(fs: FsStorage, clock: Clock) -> None:
    until = clock.now + timedelta(days=1)
    objects = [_new(f"pkg/{d}/f{i}", f"{d}{i}".encode()) for d in "ab" for i in range(3)]
    fs.put_new(objects, retain_until=until)
    assert list(fs.keys("pkg/")) == [o.key for o in objects]
    assert {fs.stat(o.key).retain_until for o in objects} == {until}
    fs.put_new(objects)  # an identical retry keeps what is there
    with pytest.raises(ObjectExistsError):
        fs.put_new([_new("pkg/a/f0", b"other bytes")])
    with pytest.raises(InvalidKeyError):
        fs.put_new([_new("pkg/a", b"a prefix")])
    assert not any(p.name.endswith(".tmp") for p in fs.root.rglob(".*"))


def test_put_new_fsyncs_each_file_once_and_each_directory_once(
    fs: FsStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    objects = [_new(f"pkg/{d}/f{i}", f"{d}{i}".encode()) for d in "ab" for i in range(3)]
    fs.put_new(objects)
    # 6 files; directories: pkg/a and pkg/b (entries), pkg (created a, b), root (created pkg)
    assert len(synced) == 6 + 4


def test_filesystem_without_user_xattrs_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(*args: object) -> None:
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "setxattr", unsupported)
    with pytest.raises(StorageUnavailableError, match="extended attributes"):
        FsStorage(tmp_path / "root")


def test_object_and_prefix_cannot_share_a_name(fs: FsStorage) -> None:
    _put(fs, "a/b", b"1")
    with pytest.raises(InvalidKeyError):
        _put(fs, "a/b/c", b"2")
    _put(fs, "x/y/z", b"3")
    with pytest.raises(InvalidKeyError):
        _put(fs, "x/y", b"4")


def test_delete_prunes_empty_directories_below_the_top_level(fs: FsStorage) -> None:
    _put(fs, "aips/1/representations/rep1/data/a.pdf", b"1")
    fs.delete("aips/1/representations/rep1/data/a.pdf")
    assert [p.name for p in fs.root.iterdir()] == ["aips"]
    assert list((fs.root / "aips").iterdir()) == []


def _legacy_object(fs: FsStorage, key: str, retain_until: str | None) -> Path:
    """An object as written before metadata moved into the attribute: a sidecar file."""
    path = fs.root.joinpath(*key.split("/"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"legacy")
    meta = {"ino": path.stat().st_ino, "size": 6, "retain_until": retain_until,
            "sha256": hashlib.sha256(b"legacy").hexdigest(), "legal_hold": False}  # fmt: skip
    (path.parent / f".{path.name}.meta").write_text(json.dumps(meta))
    return path


def test_delete_many_takes_legacy_and_leftover_sidecars_with_their_objects(
    fs: FsStorage,
) -> None:
    _legacy_object(fs, "pkg/1/old/obj", None)
    _put(fs, "pkg/1/new/obj", b"new")
    (fs.root / "pkg" / "1" / "new" / ".obj.meta").write_text("{}")  # a crash's leftover
    _put(fs, "pkg/1/keep/x", b"x")
    # A missing key and a key naming a directory are no objects: nothing to delete there.
    assert fs.delete_many(["pkg/1/old/obj", "pkg/1/new/obj", "pkg/1/gone", "pkg/1"]) == 2
    every = sorted(str(p.relative_to(fs.root)) for p in fs.root.rglob("*"))
    assert every == ["pkg", "pkg/1", "pkg/1/keep", "pkg/1/keep/x"]
    assert list(fs.keys("pkg/")) == ["pkg/1/keep/x"]


def test_delete_many_refuses_a_legacy_lock_before_deleting_anything(fs: FsStorage) -> None:
    until = fs._clock() + timedelta(days=1)
    _put(fs, "pkg/2/a", b"a")
    _legacy_object(fs, "pkg/2/b", until.isoformat())
    with pytest.raises(ObjectLockedError):
        fs.delete_many(["pkg/2/a", "pkg/2/b"])
    assert list(fs.keys("pkg/2/")) == ["pkg/2/a", "pkg/2/b"]


def test_missing_root_is_unavailable(tmp_path: Path) -> None:
    fs = FsStorage(tmp_path / "gone")
    (tmp_path / "gone").rmdir()
    with pytest.raises(StorageUnavailableError):
        list(fs.keys(""))


def _hidden(root: Path) -> list[str]:
    """Temp files and staging directories left anywhere below ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


def _commit_batches(clock: Clock) -> tuple[list[NewBatch], list[NewObject]]:
    """An intent, a package's files in subdirectories and its marker, like AipStore.commit."""
    until = clock.now + timedelta(days=30)
    files = [_new(f"aips/p1/{d}/f{i}", f"{d}{i}".encode()) for d in ("m", "r/d") for i in (1, 2)]
    marker = _new("aips/p1/METS.xml", b"<mets/>")
    batches = [
        NewBatch([_new("commit-intents/p1", b"intent")], redo=True),
        NewBatch(files, until),
        NewBatch([marker], until, exclusive=True),
    ]
    return batches, [*files, marker]


class _Rounds:
    """Counts the fsync rounds (calls of the storage's thread fan-out) and what each synced."""

    def __init__(self, fs: FsStorage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sizes: list[int] = []
        real = fs._parallel.run

        def run(fn: Any, items: Any) -> Any:
            self.sizes.append(len(items))
            return real(fn, items)

        monkeypatch.setattr(fs._parallel, "run", run)


def test_a_fresh_package_appears_with_one_rename_after_one_fsync_round(
    fs: FsStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches, stored = _commit_batches(clock)
    (fs.root / "commit-intents").mkdir()
    (fs.root / "aips").mkdir()
    rounds = _Rounds(fs, monkeypatch)
    fs.put_batches(batches, then_delete=["commit-intents/p1"])
    # One round for the intent's temp file, the 5 files and the 4 staged directories (p1,
    # m, r, r/d), then one fsync of aips/ after the rename. The intent was never needed:
    # no crash could show the files without their marker. So it was never published.
    assert rounds.sizes == [10, 1]
    assert list(fs.keys("")) == sorted(o.key for o in stored)
    assert all(fs.stat(o.key).retain_until == clock.now + timedelta(days=30) for o in stored)
    assert _hidden(fs.root) == []


def test_a_package_directory_that_appears_meanwhile_gets_the_ordered_publication(
    fs: FsStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches, stored = _commit_batches(clock)
    real = fs_module._rename_noreplace
    intents: list[bool] = []

    def raced(src: Path, dst: Path) -> bool:
        dst.mkdir()  # another writer's directory: the stage must not replace it
        return real(src, dst)

    monkeypatch.setattr(fs_module, "_rename_noreplace", raced)
    real_publish = fs._publish_batch

    def publish(items: Any, exclusive: bool, dirs: Any) -> None:
        intents.append(fs.exists("commit-intents/p1"))
        real_publish(items, exclusive, dirs)

    monkeypatch.setattr(fs, "_publish_batch", publish)
    fs.put_batches(batches, then_delete=["commit-intents/p1"])
    # The intent went first (the files became visible one batch at a time), then was removed.
    assert intents == [False, True, True]
    assert list(fs.keys("")) == sorted(o.key for o in stored)
    assert _hidden(fs.root) == []


def test_without_renameat2_batches_are_published_in_order(
    fs: FsStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches, stored = _commit_batches(clock)
    fs._noreplace = False  # as on a system or filesystem without RENAME_NOREPLACE
    rounds = _Rounds(fs, monkeypatch)
    fs.put_batches(batches, then_delete=["commit-intents/p1"])
    assert len(rounds.sizes) == 4  # the bytes, then each batch's directories
    assert list(fs.keys("")) == sorted(o.key for o in stored)
    assert _hidden(fs.root) == []


def test_a_batch_that_fails_leaves_no_temp_files(fs: FsStorage, clock: Clock) -> None:
    batches, _ = _commit_batches(clock)
    fs.put_batches([batches[2]])  # the marker exists: the package directory is not fresh
    with pytest.raises(ObjectExistsError):
        fs.put_batches(batches)
    # The intent and the files are stored (the batches before the marker's), no temp is left.
    assert len(list(fs.keys(""))) == 6
    assert _hidden(fs.root) == []


def test_stat_reads_the_attribute_and_tells_prefixes_and_foreign_files(fs: FsStorage) -> None:
    _put(fs, "a/b/c", b"abc", retain_until=fs._clock() + timedelta(days=1))
    assert fs.stat("a/b/c").retain_until is not None
    for missing in ("a/b", "a", "a/b/c/d", "a/x"):  # a prefix, below an object, absent
        with pytest.raises(ObjectNotFoundError):
            fs.stat(missing)
    (fs.root / "a" / "foreign").write_bytes(b"xyz")  # written behind our back: no attribute
    assert fs.stat("a/foreign").sha256 == hashlib.sha256(b"xyz").hexdigest()
    path = fs.root / "a" / "b" / "c"
    os.setxattr(path, "user.kluis.meta", b"{torn")  # ignored, as if absent: recomputed
    assert fs.stat("a/b/c").retain_until is None
    long_meta = {"size": 3, "sha256": hashlib.sha256(b"abc").hexdigest(), "pad": "x" * 2000}
    os.setxattr(path, "user.kluis.meta", json.dumps(long_meta).encode())  # > the read hint
    assert fs.stat("a/b/c").size == 3


def test_keys_do_not_follow_a_linked_prefix_and_need_the_root(tmp_path: Path) -> None:
    fs = FsStorage(tmp_path / "store")
    _put(fs, "aips/1/x", b"1")
    (fs.root / "aips" / "2").symlink_to(fs.root / "aips" / "1")  # not ours: not listed
    assert list(fs.keys("aips/2/")) == []
    assert list(fs.keys("aips/1/")) == ["aips/1/x"]
    assert list(fs.keys("events/1/")) == []
    (fs.root / "aips" / "2").unlink()
    (fs.root / "aips" / "1" / "x").unlink()
    for directory in (fs.root / "aips" / "1", fs.root / "aips", fs.root):
        directory.rmdir()
    with pytest.raises(StorageUnavailableError):
        list(fs.keys("events/1/"))  # a missing prefix tells nothing when the root is gone
    fs.close()
