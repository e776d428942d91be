"""S3Storage beyond the contract: the minio-SDK gaps against Ceph, retries, WORM of packages.

Pure tests (timestamp parsing, fault injection without a server) run always; the others need
the S3 server of ``make test`` (see :mod:`tests.support.s3`).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import urllib3
from minio.error import S3Error

from archive.errors import (
    IntegrityError,
    ObjectExistsError,
    ObjectLockedError,
    StorageUnavailableError,
)
from archive.model import BuiltPackage
from archive.storage.s3 import MIB, S3Storage, parse_s3_time
from archive.store import AipStore
from tests.support.s3 import S3Server


def put(storage: S3Storage, key: str, data: bytes, **kwargs: Any) -> None:
    sha = hashlib.sha256(data).hexdigest()
    storage.put(key, io.BytesIO(data), size=len(data), sha256=sha, **kwargs)


def test_parse_s3_time_accepts_ceph_nanoseconds() -> None:
    parsed = parse_s3_time("2026-11-30T08:23:57.744964268Z")
    assert parsed == datetime(2026, 11, 30, 8, 23, 57, 744964, tzinfo=UTC)
    assert parse_s3_time("2026-11-30T08:23:57Z").microsecond == 0
    assert parse_s3_time("2026-11-30T08:23:57.5+01:00") == datetime(
        2026, 11, 30, 7, 23, 57, 500000, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        parse_s3_time("yesterday")


def test_unreachable_server_is_unavailable_after_backoff() -> None:
    slept: list[float] = []
    storage = S3Storage(
        "http://127.0.0.1:9", "a", "b", "bucket", attempts=3, backoff=0.1, sleep=slept.append
    )
    with pytest.raises(StorageUnavailableError) as info:
        storage.stat("some/key")
    assert isinstance(info.value.__cause__, urllib3.exceptions.HTTPError | OSError)
    assert slept == [0.1, 0.2]


@pytest.mark.s3
def test_gap_ceph_retention_dates_have_nine_digits(server: S3Server, s3: S3Storage) -> None:
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    put(s3, "locked", b"x", retain_until=until)
    with pytest.raises(ValueError):  # the SDK's own parser fails on Ceph's answer
        server.client().get_object_retention(s3.bucket, "locked")
    assert s3.stat("locked").retain_until == until  # ours does not


@pytest.mark.s3
def test_gap_legal_hold_never_set_reads_as_off(server: S3Server, s3: S3Storage) -> None:
    put(s3, "never-held", b"x")
    with pytest.raises(S3Error) as info:  # the SDK raises where "off" is meant
        server.client().is_object_legal_hold_enabled(s3.bucket, "never-held")
    assert info.value.code == "ObjectLockConfigurationNotFoundError"
    assert s3.legal_hold("never-held") is False
    s3.set_legal_hold("never-held", True)
    assert s3.legal_hold("never-held") is True
    s3.set_legal_hold("never-held", False)
    assert s3.legal_hold("never-held") is False


@pytest.mark.s3
def test_gap_multipart_has_no_etag_and_we_do_not_need_one(server: S3Server) -> None:
    storage = server.storage(part_size=5 * MIB)
    data = os.urandom(12 * MIB)
    result = server.client().put_object(
        storage.bucket, "sdk-multipart", io.BytesIO(data), len(data), part_size=5 * MIB
    )
    assert result.etag is None  # the SDK cannot read Ceph's CompleteMultipartUpload answer
    stored = storage.put(
        "ours", io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    assert storage.stat("ours") == stored
    with storage.open("ours", offset=6 * MIB, length=10) as handle:
        assert handle.read() == data[6 * MIB : 6 * MIB + 10]


@pytest.mark.s3
def test_gap_ceph_ignores_if_none_match_in_versioned_buckets(server: S3Server) -> None:
    # Why S3Storage needs a guard bucket on Ceph. If this starts failing, Ceph fixed it.
    plain = server.storage(guard_bucket=None)
    put(plain, "twice", b"one", if_absent=True)
    put(plain, "twice", b"two", if_absent=True)  # not refused by Ceph 16
    guarded = server.storage()
    put(guarded, "twice", b"one", if_absent=True)
    with pytest.raises(ObjectExistsError):
        put(guarded, "twice", b"two", if_absent=True)


@pytest.mark.s3
def test_multipart_mismatch_stores_nothing(server: S3Server) -> None:
    storage = server.storage(part_size=5 * MIB)
    data = os.urandom(11 * MIB)
    with pytest.raises(IntegrityError):
        storage.put("bad", io.BytesIO(data), size=len(data), sha256="0" * 64)
    assert not storage.exists("bad")
    uploads = server.client()._list_multipart_uploads(storage.bucket)
    assert list(uploads.uploads) == []


@pytest.mark.s3
def test_multipart_sends_parts_at_once_and_keeps_their_order(
    server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = server.storage(part_size=5 * MIB, upload_parts=3)
    data = os.urandom(17 * MIB)  # 4 parts, the last one short
    lock = threading.Lock()
    active = [0, 0]  # now, most at once
    real = storage._upload_part

    def upload(key: str, upload_id: str, number: int, chunk: bytes) -> str:
        with lock:
            active[0] += 1
            active[1] = max(active)
        try:
            time.sleep(0.05)  # let the next part catch up with this one
            return real(key, upload_id, number, chunk)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(storage, "_upload_part", upload)
    storage.put("parts", io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert 2 <= active[1] <= 3
    with storage.open("parts") as handle:
        assert handle.read() == data
    with pytest.raises(ValueError):
        server.storage(upload_parts=0)


@pytest.mark.s3
def test_stale_guard_of_a_dead_writer_is_taken_over(server: S3Server) -> None:
    now = [datetime.now(UTC)]
    storage = server.storage(guard_timeout=timedelta(minutes=5), clock=lambda: now[0])
    storage._take_guard("claim", "a" * 64, 1)  # a writer took the guard, then died
    with pytest.raises(ObjectExistsError):
        put(storage, "claim", b"mine", if_absent=True)
    now[0] += timedelta(minutes=6)
    put(storage, "claim", b"mine", if_absent=True)
    with pytest.raises(ObjectExistsError):
        put(storage, "claim", b"other", if_absent=True)


class _Flaky(urllib3.PoolManager):
    """Fails the first ``failures`` requests of ``method``, after (``after``) or before sending."""

    def __init__(self, method: str, failures: int, after: bool) -> None:
        super().__init__(retries=urllib3.Retry(total=0), maxsize=4)
        self.method, self.failures, self.after = method, failures, after

    def urlopen(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method == self.method and "guard" not in url and self.failures > 0:
            self.failures -= 1
            if self.after:
                super().urlopen(method, url, *args, **kwargs)
                raise urllib3.exceptions.ReadTimeoutError(self, url, "injected after sending")
            raise urllib3.exceptions.ProtocolError("injected connection reset")
        return super().urlopen(method, url, *args, **kwargs)


@pytest.mark.s3
@pytest.mark.parametrize("after", [False, True], ids=["lost-request", "lost-answer"])
def test_transient_errors_are_retried(server: S3Server, s3: S3Storage, after: bool) -> None:
    flaky = _Flaky("PUT", 2, after)
    s3._client._http = flaky
    put(s3, "claimed", b"claim", if_absent=True)  # a lost answer must not look like a conflict
    assert flaky.failures == 0
    assert s3.stat("claimed").sha256 == hashlib.sha256(b"claim").hexdigest()
    s3._client._http = _Flaky("GET", 1, False)
    with s3.open("claimed") as handle:
        assert handle.read() == b"claim"


@pytest.mark.s3
def test_committed_package_is_worm(s3: S3Storage, pkg: BuiltPackage) -> None:
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    store = AipStore(s3)
    store.commit(pkg, retain_until=until)
    keys = list(s3.keys(f"aips/{pkg.aip_id}/"))
    assert len(keys) == len(pkg.files) + 1
    for key in keys:
        assert s3.stat(key).retain_until == until, key
        with pytest.raises(ObjectLockedError):
            s3.delete(key)
    assert store.verify(pkg.aip_id).ok
