"""``S3Storage``: the Storage protocol on any S3-compatible store, through the minio SDK.

Tested against Ceph RADOS Gateway (``deploy/ceph/start.sh``); written for AWS S3, MinIO,
Garage and SeaweedFS too. The bucket must have Object Lock (which implies versioning).

Guarantees and how they are kept:

- **Atomic, verified writes.** An object up to ``part_size`` is read into memory, its SHA-256
  and size checked *before* anything is sent (mismatch: :class:`IntegrityError`, nothing
  stored), then sent in one PUT with ``Content-MD5`` and a signed ``x-amz-content-sha256``
  (over https the SDK signs ``UNSIGNED-PAYLOAD``; ``Content-MD5`` still guards the body).
  Larger objects go up as a multipart upload, ``upload_parts`` parts at once (memory is
  bounded by ``upload_parts * part_size``, not by the object); the whole-object SHA-256
  is checked before ``CompleteMultipartUpload``, and a mismatch aborts the upload, so nothing
  becomes visible.
  The SHA-256 is kept as user metadata ``x-amz-meta-sha256``.
- **Conditional create** (``if_absent``): ``If-None-Match: *`` on the PUT (412 ->
  :class:`ObjectExistsError`). The SDK's ``put_object`` cannot pass that header (it turns
  unknown headers into ``x-amz-meta-*``), so requests go through the SDK's low-level
  ``_execute``. For multipart objects the header is sent on ``CompleteMultipartUpload`` and
  the key is checked before the upload starts.

  **Ceph RGW 16 ignores ``If-None-Match`` in versioned buckets** (measured: the second PUT
  succeeds and adds a version; it is honoured in unversioned buckets), and an Object Lock
  bucket is always versioned. For such stores give ``guard_bucket``: an *unversioned* bucket
  in which a conditional create first creates ``<key>`` with ``If-None-Match: *`` (atomic
  there); only the winner then writes the object. A guard without its object (its writer
  died in between) blocks the key until it is ``guard_timeout`` old, then the next creator
  removes it and competes again; ``delete`` removes the guard with the object. A guard that
  names the same SHA-256 and size counts as one's own (an identical retry is idempotent).
- **Batches** (:meth:`S3Storage.put_new`, a fresh package's files): one PUT per object,
  ``put_workers`` + 1 at a time, with retention and ``If-None-Match: *`` but without a guard
  or a lock check: the caller is the only writer of those keys (see :meth:`Storage.put_new`).
- **A package commit** (:meth:`S3Storage.put_batches`: intent, files, root METS) costs four
  round trips one after another: the root METS's guard (its *claim*, which also replaces a
  HEAD for "already committed") at once with the intent's PUT; the files (two rounds); the
  root METS. The intent's removal, by the version id its PUT answered, runs in the background
  (``_s3_deferred``), many intents per ``DeleteObjects`` request: a crash before it leaves an
  intent that reconcile deletes, as the protocol allows. 13 requests and a share of one for
  a 10-file package (was 17 in ~9 round trips).
- **WORM.** ``retain_until`` and :meth:`set_retention` use Object Lock COMPLIANCE mode:
  nobody, not even the root account, can delete the version or shorten its retention. A
  retention end already in the past is not sent (S3 refuses it; there is nothing to protect).
  Retention is rounded *up* to whole seconds (stores keep different precisions).
- **Delete** removes every version of the key (on a versioned bucket a plain DELETE only adds
  a delete marker, which would leave the bytes behind): refused with
  :class:`ObjectLockedError` when any version is under retention or legal hold. Versions are
  checked first only when there are several; one version's DELETE is refused or complete.
- **Retries.** Every request is retried with exponential backoff (``attempts``) on connection
  errors, timeouts, 5xx, ``SlowDown`` and ``RequestTimeout``. A retried conditional create that
  then meets 412, or a retried complete that meets ``NoSuchUpload``, checks whether the stored
  object is its own (same SHA-256 and size) before reporting a conflict. Reads resume after a
  broken connection with a ranged GET of the same version.
- **Errors.** Every minio, urllib3 and socket exception is translated here (``from exc``):
  404 -> :class:`ObjectNotFoundError`, 412 -> :class:`ObjectExistsError`, refused by a lock ->
  :class:`ObjectLockedError`, anything else -> :class:`StorageUnavailableError`.

Known minio-SDK gaps against Ceph RGW, worked around here (tests in
``tests/unit/archive/test_s3_storage.py``): retention dates with 9 fractional digits (the
SDK's parser accepts 6: we parse headers ourselves, :func:`parse_s3_time`); ``GetObjectLegalHold``
answering 404 ``ObjectLockConfigurationNotFoundError`` for an object never held (read as "off",
:meth:`S3Storage.legal_hold`); no ETag in the multipart result (never used: our own SHA-256 is
the object's identity); ``If-None-Match`` not passable through ``put_object`` (see above).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import logging
import math
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, suppress
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO, TypeVar
from xml.etree import ElementTree

import urllib3
from minio import Minio
from minio.commonconfig import COMPLIANCE
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.retention import Retention

from archive.errors import (
    ArchiveError,
    IntegrityError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
    StorageUnavailableError,
)
from archive.model import StoredObject
from archive.storage._parallel import Parallel
from archive.storage._s3_deferred import DeferredDeletes
from archive.storage._s3_io import ObjectReader, ceil_second, parse_s3_time, read_exactly, s3_time
from archive.storage.base import NewBatch, NewObject, check_key

__all__ = ["S3Storage", "parse_s3_time"]

log = logging.getLogger(__name__)
T = TypeVar("T")

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 6 * MIB
"""S3 wants parts of at least 5 MiB (except the last). An upload holds at most
``upload_parts`` parts in memory: those being sent, or read and hashed."""
DEFAULT_PUT_WORKERS = 4
"""How many PUTs ``put_new`` sends at once."""
DEFAULT_UPLOAD_PARTS = 2
"""How many parts of one multipart upload are in memory and sent at once."""
_MAX_PARTS = 10_000
_READ_CHUNK = MIB
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"}
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "ResourceNotFound"})


_FOREIGN = (
    MinioException,
    urllib3.exceptions.HTTPError,
    OSError,
    ValueError,  # the SDK's parsers (dates, numbers)
    ElementTree.ParseError,  # the SDK's XML parsing of an answer that is not S3 XML
)
"""What the SDK and its transport raise; translated to archive errors in this module."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _status(exc: S3Error) -> int:
    return exc.response.status if exc.response is not None else 0


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT_CODES or _status(exc) >= 500 or _status(exc) == 429
    if isinstance(exc, ServerError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, InvalidResponseError | urllib3.exceptions.HTTPError | OSError)


class _Retried:
    """Set when a call needed more than one attempt (its first may have succeeded)."""

    def __init__(self) -> None:
        self.happened = False


class S3Storage:
    """Objects in one S3 bucket with Object Lock; see the module docstring."""

    name = "s3"
    claims_before_storing = True
    """``put_batches`` claims exclusive keys before it stores anything (``ClaimsBeforeStoring``)."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        region: str = "us-east-1",
        secure: bool | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        attempts: int = 4,
        backoff: float = 0.2,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        guard_bucket: str | None = None,
        guard_timeout: timedelta = timedelta(minutes=5),
        put_workers: int = DEFAULT_PUT_WORKERS,
        upload_parts: int = DEFAULT_UPLOAD_PARTS,
        clock: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Connect lazily to ``endpoint`` (``http(s)://host:port`` or ``host:port``).

        ``secure`` defaults to the URL's scheme (https when no scheme is given).
        """
        if part_size < 5 * MIB:
            raise ValueError("part_size must be at least 5 MiB (an S3 rule)")
        if upload_parts < 1:
            raise ValueError("upload_parts must be at least 1")
        parsed = urllib.parse.urlparse(endpoint if "://" in endpoint else f"//{endpoint}")
        if secure is None:
            secure = parsed.scheme != "http"
        self.bucket = bucket
        self.endpoint = endpoint
        self.guard_bucket = guard_bucket
        self._guard_timeout = guard_timeout
        self._part_size = part_size
        self._upload_parts = upload_parts
        self._parallel = Parallel(put_workers, "s3-put")
        # A lambda, not the bound method: tests replace _delete_batch on the instance.
        self._deferred = DeferredDeletes("s3-delete", lambda batch: self._delete_batch(batch))
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._clock = clock
        self._sleep = sleep
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=urllib3.Retry(total=0, raise_on_redirect=False, raise_on_status=False),
            maxsize=16,
        )
        self._client = Minio(
            parsed.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=self._http,
        )

    # -- error translation and retries --------------------------------------------------------

    def _translate(self, exc: BaseException, what: str, key: str | None) -> ArchiveError:
        if isinstance(exc, S3Error):
            status = _status(exc)
            not_found = exc.code in _NOT_FOUND_CODES or status == 404
            if key is not None and not_found and exc.code != "NoSuchBucket":
                return ObjectNotFoundError(key)
            if exc.code == "PreconditionFailed" or status == 412:
                return ObjectExistsError(key or what)
            return StorageUnavailableError("s3", f"{what}: {status} {exc.code}: {exc.message}")
        return StorageUnavailableError("s3", f"{what}: {type(exc).__name__}: {exc}")

    def _call(
        self, what: str, key: str | None, fn: Callable[[], T], retried: _Retried | None = None
    ) -> T:
        """Run one request with retries; translate whatever it raises."""
        for attempt in range(self._attempts):
            try:
                return fn()
            except _FOREIGN as exc:
                if attempt + 1 < self._attempts and _transient(exc):
                    if retried is not None:
                        retried.happened = True
                    log.info("s3 %s failed (%s), retry %d", what, exc, attempt + 1)
                    self._sleep(self._backoff * 2**attempt)
                    continue
                raise self._translate(exc, what, key) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _execute(self, method: str, key: str, what: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", None)
        return self._client._execute(
            method,
            self.bucket,
            key,
            headers=dict(headers) if headers else None,  # the SDK adds to the dict it gets
            **kwargs,
        )

    # -- writing ------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: BinaryIO,
        *,
        size: int,
        sha256: str,
        if_absent: bool = False,
        retain_until: datetime | None = None,
    ) -> StoredObject:
        """Store ``size`` bytes from ``data`` (see the module docstring).

        Raises:
            ObjectExistsError: ``if_absent`` and the key exists.
            ObjectLockedError: overwriting an object under retention or legal hold.
            IntegrityError: size or SHA-256 mismatch; nothing is stored.
            InvalidKeyError, StorageUnavailableError.
            ValueError: ``retain_until`` is naive.
        """
        check_key(key)
        if retain_until is not None and retain_until.tzinfo is None:
            raise ValueError("retain_until must be timezone-aware")
        expected = sha256.lower()
        if if_absent and self.guard_bucket is not None:
            self._claim(key, expected, size)
            if_absent = False  # the guard made us the only creator
        elif not if_absent:
            self._refuse_if_locked(key)
        lock_until = self._effective_retention(retain_until)
        self._store(key, data, size, expected, lock_until, if_absent)
        return StoredObject(key, size, expected, lock_until, False)

    def _claim(self, key: str, sha256: str, size: int) -> bool:
        """Become the only creator of ``key``: its guard where there is a guard bucket, else
        a check that it is absent (the PUT's ``If-None-Match`` then decides). True when this
        call created a guard (``_release`` it if the object is then never sent).

        Raises:
            ObjectExistsError, StorageUnavailableError.
        """
        if self.guard_bucket is None:
            if self.exists(key):
                raise ObjectExistsError(key)
            return False
        fresh = self._take_guard(key, sha256, size)
        # A guard we just created means no object: delete() removes the object before its
        # guard, and a stale guard is only taken over after checking. An older guard with
        # our bytes may belong to an attempt that also wrote the object.
        if not fresh and self.exists(key):
            raise ObjectExistsError(key)
        return fresh

    def _release(self, key: str) -> None:
        """Remove a guard whose object was never sent (best effort: a guard left behind with
        our bytes is taken as our own by a retry, and over by others after the timeout)."""
        try:
            self._guard_call("DELETE", key, "remove")
        except ArchiveError as exc:
            log.warning("could not remove the create guard of %s: %s", key, exc)

    def _store(
        self,
        key: str,
        data: BinaryIO,
        size: int,
        expected: str,
        lock_until: datetime | None,
        if_absent: bool,
    ) -> str | None:
        """Send the object (one PUT, or a multipart upload); its version id when known."""
        headers = {"x-amz-meta-sha256": expected, "Content-Type": "application/octet-stream"}
        if lock_until is not None:
            headers["x-amz-object-lock-mode"] = COMPLIANCE
            headers["x-amz-object-lock-retain-until-date"] = s3_time(lock_until)
        if size <= self._part_size:
            body = read_exactly(data, size + 1)
            digest = hashlib.sha256(body).hexdigest()
            if len(body) != size or digest != expected:
                raise IntegrityError(key, expected, digest)
            return self._put_body(key, body, headers, if_absent)
        if if_absent and self.exists(key):
            raise ObjectExistsError(key)
        self._multipart(key, data, size, expected, headers, if_absent)
        return None

    def _put_body(
        self, key: str, body: bytes, headers: dict[str, str], if_absent: bool
    ) -> str | None:
        """One PUT of ``body`` (already checked); the new version's id when the answer gives
        it. A 412 met by a retry whose first attempt landed is success when the stored object
        is ours (version unknown: None); any other 412 is ObjectExistsError.
        """
        headers = {
            **headers,
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        }
        if if_absent:
            headers["If-None-Match"] = "*"
        retried = _Retried()
        try:
            response = self._call(
                f"put {key}",
                key,
                lambda: self._execute("PUT", key, "put", body=body, headers=headers),
                retried,
            )
        except ObjectExistsError:
            sha256 = headers["x-amz-meta-sha256"]
            if not (retried.happened and self._is_own(key, sha256, len(body))):
                raise
            return None
        version = response.headers.get("x-amz-version-id")
        return str(version) if version and version != "null" else None

    def put_new(
        self, objects: Sequence[NewObject], *, retain_until: datetime | None = None
    ) -> None:
        """Store small new objects with one PUT each, ``put_workers`` at a time: no guard, no
        lock check. Returns when every PUT has finished.

        ``If-None-Match: *`` is sent anyway: stores that honour it refuse other bytes under an
        existing key (:class:`ObjectExistsError`); Ceph RGW in a versioned bucket ignores it
        and the new bytes become the current version (see :meth:`Storage.put_new`).

        Raises:
            IntegrityError: bytes do not match their SHA-256; nothing is stored.
            ObjectExistsError, InvalidKeyError, StorageUnavailableError.
            ValueError: ``retain_until`` is naive.
        """
        if retain_until is not None and retain_until.tzinfo is None:
            raise ValueError("retain_until must be timezone-aware")
        _check_objects(objects)
        self._put_checked(objects, retain_until)

    def put_batches(self, batches: Sequence[NewBatch], *, then_delete: Sequence[str] = ()) -> None:
        """Store batches of new objects in order (see :meth:`Storage.put_batches`).

        Every acknowledged PUT is durable, so the batches go one after another, each batch's
        PUTs at once (as ``put_new``), with two shortcuts that the order allows:

        - every key of an ``exclusive`` batch is *claimed* before anything is stored (its
          guard taken, or, without a guard bucket, checked absent), at once with the first
          batch when that is a ``redo`` batch that locks nothing (a commit intent). A claim
          that fails raises :class:`ObjectExistsError` with nothing stored (the redo batch's
          versions are removed again). The exclusive objects are sent in their turn
          (``If-None-Match: *`` when there is no guard);
        - ``then_delete`` runs in the background once every batch is stored (see
          :mod:`archive.storage._s3_deferred`): a key this call created is deleted by the
          version id its PUT answered (no listing, no guard; with other such deletions in one
          ``DeleteObjects`` request), any other as by ``delete``. This client's reads wait
          for it (``keys``, ``stat``, ``exists``, ``open``); :meth:`drain` and :meth:`close`
          send and wait for all. A failure is logged, not raised: the object stays for
          reconcile.

        Raises:
            IntegrityError, ObjectExistsError, InvalidKeyError, StorageUnavailableError: see
                :meth:`Storage.put_batches`.
            ValueError: a ``retain_until`` is naive.
        """
        for batch in batches:
            if batch.retain_until is not None and batch.retain_until.tzinfo is None:
                raise ValueError("retain_until must be timezone-aware")
            _check_objects(batch.objects)
        if not batches:
            self._delete_later(then_delete, {})
            return
        created: dict[str, str | None] = {}  # key -> version id, of what this call stored
        claims = [obj for batch in batches if batch.exclusive for obj in batch.objects]
        fresh, start = self._claim_first(batches[0], claims, created)
        sent = False  # an exclusive object's PUT was sent (its outcome may be unknown)
        try:
            for batch in batches[start:]:
                lock_until = self._effective_retention(batch.retain_until)
                if not batch.exclusive:
                    created |= self._put_checked(batch.objects, batch.retain_until)
                    continue
                sent = True
                for obj in batch.objects:
                    sha = obj.sha256.lower()
                    # With a guard the claim made us the only creator; without one the PUT's
                    # If-None-Match decides (the claim only checked early).
                    if_absent = self.guard_bucket is None
                    data = io.BytesIO(obj.data)
                    self._store(obj.key, data, len(obj.data), sha, lock_until, if_absent)
        except BaseException:
            if not sent:
                for key in fresh:
                    self._release(key)
            raise
        self._delete_later(then_delete, created)

    def _claim_first(
        self, first: NewBatch, claims: Sequence[NewObject], created: dict[str, str | None]
    ) -> tuple[list[str], int]:
        """Claim ``claims``, and store ``first`` at the same time when it locks nothing (its
        versions go to ``created``). Returns the keys of the guards this call created and
        how many batches it stored (0 or 1). On failure nothing of it stays: guards created
        are released, versions stored deleted.

        Raises:
            ObjectExistsError, StorageUnavailableError.
        """
        fresh: list[str] = []
        if not claims:
            return fresh, 0
        # Only a redo record may go out with the claims: it is no object of the package, so
        # a claim that then fails overwrote nothing anyone reads (on Ceph, which ignores
        # If-None-Match here, a package's file sent at once could replace a committed one's
        # until removed again).
        overlap = (
            first.redo
            and not first.exclusive
            and self._effective_retention(first.retain_until) is None
        )

        def claim(obj: NewObject) -> None:
            if self._claim(obj.key, obj.sha256.lower(), len(obj.data)):
                fresh.append(obj.key)

        def store(obj: NewObject) -> None:
            created[obj.key] = self._put_one(obj, None)

        jobs: list[Callable[[], None]] = [functools.partial(claim, obj) for obj in claims]
        if overlap:
            jobs += [functools.partial(store, obj) for obj in first.objects]
        try:
            self._parallel.run(lambda job: job(), jobs)
        except BaseException:
            for key in fresh:
                self._release(key)
            for key, version in created.items():
                try:
                    if version is not None:  # unknown (a retried PUT): reconcile removes it
                        self._delete_version(key, version)
                except ArchiveError as exc:
                    log.warning("could not remove %s after a failed claim: %s", key, exc)
            raise
        return fresh, 1 if overlap else 0

    def _put_checked(
        self, objects: Sequence[NewObject], retain_until: datetime | None
    ) -> dict[str, str | None]:
        """``put_new`` of objects whose keys and hashes are checked; key -> version id."""
        lock_until = self._effective_retention(retain_until)
        versions = self._parallel.run(lambda obj: self._put_one(obj, lock_until), objects)
        return {obj.key: version for obj, version in zip(objects, versions, strict=True)}

    def _put_one(self, obj: NewObject, lock_until: datetime | None) -> str | None:
        """One checked new object, ``If-None-Match: *`` (identical bytes: success)."""
        headers = {
            "x-amz-meta-sha256": obj.sha256.lower(),
            "Content-Type": "application/octet-stream",
        }
        if lock_until is not None:
            headers["x-amz-object-lock-mode"] = COMPLIANCE
            headers["x-amz-object-lock-retain-until-date"] = s3_time(lock_until)
        try:
            return self._put_body(obj.key, obj.data, headers, if_absent=True)
        except ObjectExistsError:
            if not self._is_own(obj.key, obj.sha256.lower(), len(obj.data)):
                raise
            return None

    def _delete_later(self, keys: Sequence[str], created: dict[str, str | None]) -> None:
        for key in keys:
            check_key(key)
            self._deferred.submit(key, created.get(key))

    def _delete_batch(self, victims: Sequence[tuple[str, str | None]]) -> None:
        """The deferred deletions: known versions in one ``DeleteObjects`` request, other keys
        as by ``delete``. What fails is logged (reconcile removes it), never raised."""
        versions = [DeleteObject(key, version) for key, version in victims if version]
        if versions:
            errors = self._call(
                f"delete {len(versions)} objects",
                None,
                lambda: list(self._client.remove_objects(self.bucket, versions)),
            )
            for error in errors:
                if error.code not in _NOT_FOUND_CODES:
                    log.warning(
                        "deferred delete of %s failed (reconcile removes it): %s: %s",
                        error.name,
                        error.code,
                        error.message,
                    )
        for key, version in victims:
            if not version:
                try:
                    self.delete(key)
                except ArchiveError as exc:
                    log.warning("deferred delete of %s failed (reconcile removes it): %s", key, exc)

    def _delete_version(self, key: str, version: str) -> None:
        """Delete one version of ``key``; gone already is fine.

        Raises:
            ObjectLockedError, StorageUnavailableError.
        """
        try:
            self._call(
                f"delete {key}",
                key,
                lambda: self._client.remove_object(self.bucket, key, version_id=version),
            )
        except ObjectNotFoundError:
            return
        except StorageUnavailableError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "AccessDenied":
                raise ObjectLockedError(key, None) from cause
            raise

    def drain(self) -> None:
        """Wait for the deferred deletions (``then_delete`` of :meth:`put_batches`)."""
        self._deferred.drain()

    def _guard_call(self, method: str, key: str, what: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", None)
        return self._call(
            f"{what} guard of {key}",
            key,
            lambda: self._client._execute(
                method,
                self.guard_bucket,
                key,
                headers=dict(headers) if headers else None,
                **kwargs,
            ),
        )

    def _take_guard(self, key: str, sha256: str, size: int) -> bool:
        """Become the only creator of ``key`` (see the module docstring), or raise.

        Returns True when this call created the guard, False when it found its own.

        Raises:
            ObjectExistsError: another creator holds the guard (or the object exists).
        """
        body = f"{sha256} {size}".encode()
        for attempt in range(2):
            try:
                self._guard_call("PUT", key, "create", body=body, headers={"If-None-Match": "*"})
                return True
            except ObjectExistsError:
                pass
            try:
                held = self._guard_call("GET", key, "read")
            except ObjectNotFoundError:
                continue  # removed meanwhile: compete again
            if held.data == body:
                return False  # our own earlier attempt (or identical bytes): idempotent
            stale = False
            modified = held.headers.get("Last-Modified")
            if modified:
                age = self._clock() - parsedate_to_datetime(modified)
                stale = age > self._guard_timeout
            if attempt or not stale or self.exists(key):
                raise ObjectExistsError(key)
            log.warning("removing stale create guard of %s (its writer died)", key)
            with suppress(ObjectNotFoundError):
                self._guard_call("DELETE", key, "remove")
        raise ObjectExistsError(key)

    def _effective_retention(self, retain_until: datetime | None) -> datetime | None:
        if retain_until is None or retain_until <= self._clock():
            return None
        return ceil_second(retain_until)

    def _is_own(self, key: str, sha256: str, size: int) -> bool:
        try:
            current = self.stat(key)
        except ObjectNotFoundError:
            return False
        return current.sha256 == sha256 and current.size == size

    def _multipart(
        self,
        key: str,
        data: BinaryIO,
        size: int,
        expected: str,
        headers: dict[str, str],
        if_absent: bool,
    ) -> None:
        part_size = max(self._part_size, math.ceil(size / _MAX_PARTS))
        upload_id: str = self._call(
            f"start upload {key}",
            key,
            lambda: self._client._create_multipart_upload(self.bucket, key, dict(headers)),
        )
        # Up to ``upload_parts`` parts are sent at once (worker threads; hashing and sending
        # release the GIL); the next part is read and hashed here as soon as a slot is free,
        # so at most ``upload_parts`` parts are in memory. With one part in flight the store
        # had nothing to do while the next was read and hashed.
        pool = ThreadPoolExecutor(self._upload_parts, thread_name_prefix="s3-upload")
        try:
            digest = hashlib.sha256()
            written = 0
            etags: list[tuple[int, str]] = []
            pending: deque[Future[str]] = deque()
            while written < size:
                if len(pending) >= self._upload_parts:
                    etags.append((len(etags) + 1, pending.popleft().result()))
                chunk = read_exactly(data, min(part_size, size - written))
                if not chunk:
                    break
                digest.update(chunk)
                written += len(chunk)
                number = len(etags) + len(pending) + 1
                pending.append(pool.submit(self._upload_part, key, upload_id, number, chunk))
                del chunk
            while pending:
                etags.append((len(etags) + 1, pending.popleft().result()))
            if written != size or data.read(1) or digest.hexdigest() != expected:
                raise IntegrityError(key, expected, digest.hexdigest())
            self._complete(key, upload_id, etags, if_absent, expected, size)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            try:
                self._client._abort_multipart_upload(self.bucket, key, upload_id)
            except Exception:  # the store expires abandoned uploads; never mask the cause
                log.warning("could not abort multipart upload %s of %s", upload_id, key)
            raise
        finally:
            pool.shutdown(wait=True)

    def _upload_part(self, key: str, upload_id: str, number: int, chunk: bytes) -> str:
        etag: str = self._call(
            f"upload part {number} of {key}",
            key,
            lambda: self._client._upload_part(self.bucket, key, chunk, None, upload_id, number),
        )
        return etag

    def _complete(
        self,
        key: str,
        upload_id: str,
        etags: list[tuple[int, str]],
        if_absent: bool,
        expected: str,
        size: int,
    ) -> None:
        root = ElementTree.Element("CompleteMultipartUpload")
        for number, etag in etags:
            part = ElementTree.SubElement(root, "Part")
            ElementTree.SubElement(part, "PartNumber").text = str(number)
            ElementTree.SubElement(part, "ETag").text = f'"{etag.strip(chr(34))}"'
        body = ElementTree.tostring(root)
        headers = {
            "Content-Type": "application/xml",
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        }
        if if_absent:
            headers["If-None-Match"] = "*"
        retried = _Retried()
        try:
            # The answer's ETag is not used (the SDK cannot read Ceph's): our SHA-256 is the
            # object's identity, and stat() reads the stored state.
            self._call(
                f"complete upload {key}",
                None,
                lambda: self._execute(
                    "POST",
                    key,
                    "complete",
                    body=body,
                    headers=headers,
                    query_params={"uploadId": upload_id},
                ),
                retried,
            )
        except (ObjectExistsError, StorageUnavailableError) as exc:
            if retried.happened and self._is_own(key, expected, size):
                return
            if isinstance(exc, ObjectExistsError):
                raise ObjectExistsError(key) from exc
            raise

    # -- reading ------------------------------------------------------------------------------

    def open(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """Stream the object (or ``length`` bytes from ``offset``) in bounded memory.

        Raises:
            ObjectNotFoundError, StorageUnavailableError, InvalidKeyError.
        """
        check_key(key)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        self._deferred.wait_for(key)
        reader = ObjectReader(self._get, key, offset, length, self._attempts)
        return io.BufferedReader(reader, _READ_CHUNK)

    def _get(self, key: str, offset: int, length: int | None, version: str | None) -> Any:
        if length == 0:
            return None
        return self._call(
            f"get {key}",
            key,
            lambda: self._client.get_object(
                self.bucket, key, offset=offset, length=length or 0, version_id=version
            ),
        )

    def _head(self, key: str, version: str | None = None) -> Any:
        query = {"versionId": version} if version else None
        return self._call(
            f"stat {key}", key, lambda: self._execute("HEAD", key, "stat", query_params=query)
        )

    def stat(self, key: str) -> StoredObject:
        """Size, SHA-256, retention and legal hold of the current version.

        An object written by another client has no ``x-amz-meta-sha256``: its SHA-256 is then
        computed by streaming it.

        Raises:
            ObjectNotFoundError, StorageUnavailableError, InvalidKeyError.
        """
        check_key(key)
        self._deferred.wait_for(key)
        return self._stored(key, self._head(key).headers)

    def _stored(self, key: str, headers: Any) -> StoredObject:
        size = int(headers.get("Content-Length", "0"))
        sha = headers.get("x-amz-meta-sha256")
        if not sha:
            digest = hashlib.sha256()
            with self.open(key) as stream:
                while chunk := stream.read(_READ_CHUNK):
                    digest.update(chunk)
            sha = digest.hexdigest()
        until_text = headers.get("x-amz-object-lock-retain-until-date")
        try:
            until = parse_s3_time(until_text) if until_text else None
        except ValueError as exc:
            raise StorageUnavailableError("s3", f"stat {key}: bad retention date") from exc
        hold = (headers.get("x-amz-object-lock-legal-hold") or "").upper() == "ON"
        return StoredObject(key, size, str(sha), until, hold)

    def exists(self, key: str) -> bool:
        """Raises: StorageUnavailableError, InvalidKeyError."""
        check_key(key)
        self._deferred.wait_for(key)
        try:
            self._head(key)
        except ObjectNotFoundError:
            return False
        return True

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix``, in lexicographic (UTF-8 byte) order, streamed.

        Raises:
            StorageUnavailableError.
        """
        self._deferred.wait_for(prefix)
        listing = self._call(
            f"list {prefix!r}",
            None,
            lambda: iter(self._client.list_objects(self.bucket, prefix=prefix, recursive=True)),
        )
        while True:
            try:
                item = next(listing)
            except StopIteration:
                return
            except _FOREIGN as exc:
                raise self._translate(exc, f"list {prefix!r}", None) from exc
            if not item.is_dir:
                yield str(item.object_name)

    def legal_hold(self, key: str, version: str | None = None) -> bool:
        """Read the legal hold with ``GetObjectLegalHold``.

        Ceph answers 404 ``ObjectLockConfigurationNotFoundError`` for an object whose hold was
        never set; the SDK maps only ``NoSuchObjectLockConfiguration`` to "off". Both are "off".

        Raises:
            ObjectNotFoundError, StorageUnavailableError.
        """
        check_key(key)
        query = {"legal-hold": ""}
        if version:
            query["versionId"] = version
        try:
            response = self._call(
                f"legal hold of {key}",
                None,
                lambda: self._execute("GET", key, "legal hold", query_params=query),
            )
        except StorageUnavailableError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and _status(cause) == 404:
                if cause.code in _NOT_FOUND_CODES:
                    raise ObjectNotFoundError(key) from cause
                return False
            raise
        return b"<Status>ON</Status>" in response.data.replace(b" ", b"")

    # -- locks and deletion -------------------------------------------------------------------

    def _versions(self, key: str) -> list[tuple[str | None, bool]]:
        """(version id, is delete marker) of every version of exactly ``key``."""
        found = self._call(
            f"list versions of {key}",
            None,
            lambda: [
                (o.version_id, bool(o.is_delete_marker))
                for o in self._client.list_objects(self.bucket, prefix=key, include_version=True)
                if o.object_name == key
            ],
        )
        return found

    def _lock_error(self, key: str, obj: StoredObject) -> ObjectLockedError | None:
        if obj.legal_hold or (obj.retain_until is not None and obj.retain_until > self._clock()):
            return ObjectLockedError(key, obj.retain_until, legal_hold=obj.legal_hold)
        return None

    def _refuse_if_locked(self, key: str) -> None:
        try:
            current = self.stat(key)
        except ObjectNotFoundError:
            return
        error = self._lock_error(key, current)
        if error is not None:
            raise error

    def _refuse_version_if_locked(self, key: str, version: str | None) -> None:
        try:
            head = self._head(key, version)
        except ObjectNotFoundError:
            return
        error = self._lock_error(key, self._stored(key, head.headers))
        if error is not None:
            raise error

    def delete(self, key: str) -> None:
        """Remove every version of the key; a missing key is not an error.

        Raises:
            ObjectLockedError: a version is under retention or legal hold (nothing deleted).
            StorageUnavailableError, InvalidKeyError.
        """
        check_key(key)
        versions = self._versions(key)
        if len(versions) > 1:
            # Check every version first, so that a locked one leaves all of them in place. A
            # single version needs no check: its DELETE is refused, or removes all there is.
            for version, marker in versions:
                if not marker:
                    self._refuse_version_if_locked(key, version)
        for version, _ in versions:
            try:
                self._call(
                    f"delete {key}",
                    key,
                    lambda v=version: self._client.remove_object(  # type: ignore[misc]
                        self.bucket, key, version_id=v
                    ),
                )
            except StorageUnavailableError as exc:
                cause = exc.__cause__
                if isinstance(cause, S3Error) and cause.code == "AccessDenied":
                    self._refuse_version_if_locked(key, version)
                    raise ObjectLockedError(key, None, legal_hold=True) from cause
                raise
            except ObjectNotFoundError:
                continue
        if self.guard_bucket is not None:
            with suppress(ObjectNotFoundError):
                self._guard_call("DELETE", key, "remove")

    def delete_many(self, keys: Sequence[str]) -> int:
        """Remove many objects (every version of each); see :meth:`Storage.delete_many`.

        Raises:
            ObjectLockedError: a version of any of them is under retention or legal hold.
            StorageUnavailableError, InvalidKeyError.
        """
        present = []
        for key in keys:
            try:
                stored = self.stat(key)
            except ObjectNotFoundError:
                continue
            if stored.legal_hold or (
                stored.retain_until is not None and stored.retain_until > datetime.now(UTC)
            ):
                raise ObjectLockedError(key, stored.retain_until, legal_hold=stored.legal_hold)
            present.append(key)
        for key in present:
            self.delete(key)  # checks every version once more; the store enforces the lock
        return len(present)

    def set_retention(self, key: str, retain_until: datetime) -> StoredObject:
        """Extend the COMPLIANCE retention of the current version (rounded up to a second).

        Raises:
            ObjectLockedError: ``retain_until`` is earlier than the retention in force.
            ObjectNotFoundError, StorageUnavailableError, InvalidKeyError.
            ValueError: ``retain_until`` is naive.
        """
        if retain_until.tzinfo is None:
            raise ValueError("retain_until must be timezone-aware")
        current = self.stat(key)
        until = ceil_second(retain_until)
        in_force = current.retain_until is not None and current.retain_until > self._clock()
        if in_force and current.retain_until is not None and until < current.retain_until:
            raise ObjectLockedError(key, current.retain_until, legal_hold=current.legal_hold)
        if until <= self._clock():
            return current
        try:
            self._call(
                f"set retention of {key}",
                key,
                lambda: self._client.set_object_retention(
                    self.bucket, key, Retention(COMPLIANCE, until)
                ),
            )
        except StorageUnavailableError as exc:
            cause = exc.__cause__
            if isinstance(cause, S3Error) and cause.code == "AccessDenied":
                raise ObjectLockedError(key, current.retain_until) from cause
            raise
        return StoredObject(key, current.size, current.sha256, until, current.legal_hold)

    def set_legal_hold(self, key: str, hold: bool) -> StoredObject:
        """Place or lift the S3 legal hold of the current version.

        Raises:
            ObjectNotFoundError, StorageUnavailableError, InvalidKeyError.
        """
        current = self.stat(key)
        change = (
            self._client.enable_object_legal_hold
            if hold
            else self._client.disable_object_legal_hold
        )
        self._call(f"legal hold of {key}", key, lambda: change(self.bucket, key))
        return StoredObject(key, current.size, current.sha256, current.retain_until, hold)

    def close(self) -> None:
        """Finish the deferred deletions, stop the threads and close the connection pool."""
        self._deferred.close()
        self._parallel.close()
        self._http.clear()


def _check_objects(objects: Sequence[NewObject]) -> None:
    """Raises: InvalidKeyError, IntegrityError (bytes that do not match their SHA-256)."""
    for obj in objects:
        check_key(obj.key)
        digest = hashlib.sha256(obj.data).hexdigest()
        if digest != obj.sha256.lower():
            raise IntegrityError(obj.key, obj.sha256.lower(), digest)
