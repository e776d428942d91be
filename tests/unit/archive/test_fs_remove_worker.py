"""FsStorage's removal worker process: big ``delete_many`` calls remove there, after the
lock checks in this process; a dead worker fails the call (domain error) and is replaced;
it ends with its storage and with a killed parent."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from archive.errors import ObjectLockedError, StorageUnavailableError
from archive.storage import _fs_remove_worker as worker_module
from archive.storage._fs_remove_worker import RemovalWorker
from archive.storage.fs import FsStorage
from tests.unit.archive.conftest import Clock


def _put(fs: FsStorage, key: str, data: bytes, **kwargs: Any) -> None:
    sha = hashlib.sha256(data).hexdigest()
    fs.put(key, io.BytesIO(data), size=len(data), sha256=sha, **kwargs)


def _worker_pid(fs: FsStorage) -> int:
    process = fs._removal_worker._process
    assert process is not None
    return process.pid


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """The process ended (gone, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def big(fs: FsStorage) -> FsStorage:
    fs.OFFLOAD_FROM = 2  # every batch of two or more keys goes there
    return fs


def test_a_big_batch_is_removed_by_the_worker_and_pruned(big: FsStorage) -> None:
    keys = [f"aips/{n}/representations/rep1/data/{f}" for n in range(5) for f in "ab"]
    for key in keys:
        _put(big, key, b"x")
    _put(big, "aips/9/METS.xml", b"kept")
    legacy = big.root / "aips" / "3" / "representations" / "rep1" / "data" / ".a.meta"
    legacy.write_text("{}")  # a crash's leftover sidecar does not keep its directory
    assert big.delete_many([*keys, "aips/0/missing", "aips/1"]) == len(keys)
    assert big._removal_worker._process is not None  # it ran there, not here
    assert sorted(str(p.relative_to(big.root)) for p in big.root.rglob("*")) == [
        "aips",
        "aips/9",
        "aips/9/METS.xml",
    ]
    assert big.delete_many(keys) == 0  # idempotent


def test_the_lock_check_stays_here_with_the_storage_clock(big: FsStorage, clock: Clock) -> None:
    until = clock.now + timedelta(days=1)
    _put(big, "aips/1/METS.xml", b"a")
    _put(big, "aips/1/data/b", b"b", retain_until=until)
    with pytest.raises(ObjectLockedError):
        big.delete_many(["aips/1/METS.xml", "aips/1/data/b"])
    assert list(big.keys("aips/")) == ["aips/1/METS.xml", "aips/1/data/b"]
    clock.now = until + timedelta(seconds=1)  # the worker has no clock: ours decides
    assert big.delete_many(["aips/1/METS.xml", "aips/1/data/b"]) == 2


def test_close_ends_the_worker_and_a_later_call_starts_one(big: FsStorage) -> None:
    _put(big, "a/1/x", b"1")
    _put(big, "a/1/y", b"1")
    big.delete_many(["a/1/x", "a/1/y"])
    pid = _worker_pid(big)
    big.close()
    assert _gone(pid)
    _put(big, "a/2/x", b"1")
    _put(big, "a/2/y", b"1")
    assert big.delete_many(["a/2/x", "a/2/y"]) == 2
    assert _worker_pid(big) != pid


def test_small_batches_stay_in_process(fs: FsStorage) -> None:
    _put(fs, "a/1/x", b"1")
    assert fs.delete_many(["a/1/x"]) == 1
    assert fs._removal_worker._process is None


def test_a_worker_killed_between_calls_is_replaced(big: FsStorage) -> None:
    _put(big, "a/1/x", b"1")
    _put(big, "a/1/y", b"1")
    big.delete_many(["a/1/x", "a/1/y"])
    pid = _worker_pid(big)
    os.kill(pid, signal.SIGKILL)
    assert _gone(pid)
    _put(big, "a/2/x", b"1")
    _put(big, "a/2/y", b"1")
    assert big.delete_many(["a/2/x", "a/2/y"]) == 2
    assert _worker_pid(big) != pid


def test_a_worker_killed_during_a_request_is_a_domain_error_and_a_rerun_finishes(
    big: FsStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"a/{n}/x" for n in range(4)]
    for key in keys:
        _put(big, key, b"1")
    big.delete_many(["a/none", "a/nothing"])  # starts the worker
    pid = _worker_pid(big)
    os.kill(pid, signal.SIGSTOP)  # it cannot read the request before it dies
    sent = threading.Event()
    original = worker_module._send

    def send(stream: Any, message: dict[str, Any]) -> None:
        original(stream, message)
        sent.set()

    monkeypatch.setattr(worker_module, "_send", send)
    failures: list[BaseException] = []

    def call() -> None:
        try:
            big.delete_many(keys)
        except BaseException as exc:  # reported to the test thread
            failures.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    assert sent.wait(10)
    os.kill(pid, signal.SIGKILL)
    thread.join(30)
    assert len(failures) == 1 and isinstance(failures[0], StorageUnavailableError)
    assert list(big.keys("a/")) == keys  # nothing was removed
    assert big.delete_many(keys) == 4  # a new worker finishes it
    assert list(big.keys("a/")) == []


def test_a_failed_removal_comes_back_as_storage_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    worker = RemovalWorker()
    try:
        with pytest.raises(StorageUnavailableError, match="removal worker"):
            worker.remove(str(tmp_path), [[(str(tmp_path / "file" / "x"), False)]], 1)
        assert worker.remove(str(tmp_path), [], 1) == 0  # the same worker serves on
    finally:
        worker.close()


_KILLED_PARENT = """
import hashlib, io, os, signal, sys
from pathlib import Path
from archive.storage.fs import FsStorage
fs = FsStorage(Path(sys.argv[1]))
fs.OFFLOAD_FROM = 2
for key in ("a/1/x", "a/1/y"):
    fs.put(key, io.BytesIO(b"1"), size=1, sha256=hashlib.sha256(b"1").hexdigest())
fs.delete_many(["a/1/x", "a/1/y"])
print(fs._removal_worker._process.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_worker_ends_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_PARENT, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert _gone(int(done.stdout.split()[0]))
    assert list((tmp_path / "store" / "a").iterdir()) == []  # the removal was done first


def test_messages_are_length_prefixed_json() -> None:
    stream = io.BytesIO()
    worker_module._send(stream, {"removed": 3})
    raw = stream.getvalue()
    assert int.from_bytes(raw[:4], "big") == len(raw) - 4
    assert json.loads(raw[4:]) == {"removed": 3}
    stream.seek(0)
    assert worker_module._receive(stream) == {"removed": 3}
    assert worker_module._receive(stream) is None
    with pytest.raises(EOFError):
        worker_module._receive(io.BytesIO(raw[:-1]))


def test_a_forked_child_starts_its_own_worker_and_leaves_the_parents(big: FsStorage) -> None:
    for key in ("a/1/x", "a/1/y", "a/2/x", "a/2/y"):
        _put(big, key, b"1")
    big.delete_many(["a/1/x", "a/1/y"])
    parent_worker = _worker_pid(big)
    child = os.fork()
    if child == 0:  # pragma: no cover  (runs in the child; its exit code is the result)
        ok = False
        try:
            removed = big.delete_many(["a/2/x", "a/2/y"])
            ok = removed == 2 and _worker_pid(big) != parent_worker
            big.close()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not _gone(parent_worker, timeout=0.1)  # the child did not end the parent's
    assert list(big.keys("a/")) == []
