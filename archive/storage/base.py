"""The Storage protocol: bytes under relative '/'-keys, on a filesystem or an S3 store.

Keys are relative paths of safe segments (``aips/<id>/METS.xml``). Every backend raises only
:mod:`archive.errors` types; a foreign exception escaping a backend is a bug.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

from archive.errors import InvalidKeyError
from archive.model import StoredObject

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@=+-]*$")
_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@=+-]*(?:/[A-Za-z0-9][A-Za-z0-9._:@=+-]*)*")
"""Every segment as ``_SEGMENT`` (so never ``.`` or ``..``), in one match: the fast path of
:func:`check_key`, which runs several times per object read."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidKeyError`."""
    if len(key) <= 900 and _SAFE_KEY.fullmatch(key):
        return key
    if not key or len(key) > 900:
        raise InvalidKeyError(key, "empty or longer than 900 characters")
    for segment in key.split("/"):
        if not _SEGMENT.match(segment) or segment in (".", ".."):
            raise InvalidKeyError(key, f"segment {segment!r} is not allowed")
    return key


@dataclass(frozen=True)
class NewObject:
    """One small object for :meth:`Storage.put_new`: its bytes and their expected SHA-256."""

    key: str
    data: bytes
    sha256: str


@dataclass(frozen=True)
class NewBatch:
    """One step of :meth:`Storage.put_batches`: new objects stored like ``put_new``."""

    objects: Sequence[NewObject]
    retain_until: datetime | None = None
    exclusive: bool = False
    """Each object is a strict conditional create, like ``put(if_absent=True)``:
    :class:`ObjectExistsError` when the key exists, even with the same bytes."""
    redo: bool = False
    """A redo record (a commit intent): needed only to recover from a crash part-way through
    the batches after it. A backend that makes all of those visible at once, durable, may
    leave it unstored (fs: a fresh directory renamed into place); list its keys in
    ``then_delete``."""


class Storage(Protocol):
    """Durable bytes under keys. Implementations: ``FsStorage``, ``S3Storage``."""

    name: str
    """Short backend name for messages and metrics, e.g. ``fs`` or ``s3``."""

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
        """Store ``size`` bytes read from ``data`` under ``key``, durably, atomically.

        Readers see either the whole object or none. The bytes are hashed while written
        and must match ``sha256``.

        Raises:
            ObjectExistsError: ``if_absent`` and an object already exists (conditional create).
            IntegrityError: the bytes do not match ``sha256`` or ``size``; nothing is stored.
            StorageUnavailableError: the backend failed; nothing acknowledged is lost.
        """
        ...

    def put_new(
        self, objects: Sequence[NewObject], *, retain_until: datetime | None = None
    ) -> None:
        """Store small new objects that only this caller writes (the files of a fresh package).

        Each object is atomic (whole or none) and SHA-256 checked; all are durable when this
        returns (in no particular order among themselves: a crash may leave any subset).
        Cheaper than ``put`` per object: a backend batches durability (fs: one fsync per
        directory) and skips the round trips of a strict conditional create. So an existing
        object under a key is noticed only where that costs nothing: fs always, S3 where the
        store honours ``If-None-Match`` (Ceph RGW in a versioned bucket does not: the new
        bytes become the current version). An existing object with the same bytes is kept:
        an identical retry is not an error.

        Raises:
            IntegrityError: bytes do not match their SHA-256; checked before anything is stored.
            ObjectExistsError: a key holds other bytes (where noticed, see above).
            StorageUnavailableError: the backend failed; some objects may be stored.
        """
        ...

    def put_batches(self, batches: Sequence[NewBatch], *, then_delete: Sequence[str] = ()) -> None:
        """Store batches of new objects in order; all durable when it returns.

        Each batch is stored as by ``put_new`` with its ``retain_until`` (``exclusive``: each
        object as by ``put(if_absent=True)``). No object of a batch becomes visible before
        every object of the batches before it is durable, so a crash leaves the batches before
        one whole, a subset of that one, and nothing of those after it. This is a commit
        protocol in one call (intent, files, commit marker) so that a backend can overlap what
        the order allows: fs writes and fsyncs every object's bytes at once, then publishes
        the batches one after another with one round of directory fsyncs each.

        ``then_delete``: objects without retention or hold, removed once every batch is
        durable. Their removal need not be durable: after a crash they may come back (a commit
        intent of a committed package, which reconcile deletes). A backend may remove them
        in the background after returning (S3): its own reads wait for that, and a failure
        is logged instead of raised (the object stays for reconcile).

        Raises:
            IntegrityError: bytes do not match their SHA-256; checked for every object of
                every batch before anything is stored.
            ObjectExistsError: as ``put_new`` or ``put(if_absent=True)``; the batches before
                the failing one are stored, nothing of those after it (with
                :class:`ClaimsBeforeStoring`: nothing at all, for an exclusive key).
            ObjectLockedError: a ``then_delete`` object is locked (every batch is stored;
                not raised where the removal runs in the background).
            InvalidKeyError, StorageUnavailableError.
            ValueError: a ``retain_until`` is naive.
        """
        ...

    def open(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """Open the object for streaming reads: all of it, or ``length`` bytes from ``offset``.

        Memory stays bounded whatever the object's size.

        Raises:
            ObjectNotFoundError, StorageUnavailableError.
            ValueError: a negative offset or length.
        """
        ...

    def stat(self, key: str) -> StoredObject:
        """Raises: ObjectNotFoundError, StorageUnavailableError."""
        ...

    def exists(self, key: str) -> bool:
        """Raises: StorageUnavailableError."""
        ...

    def keys(self, prefix: str) -> Iterator[str]:
        """All keys starting with ``prefix``, in lexicographic order.

        Raises:
            StorageUnavailableError.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error.

        Raises:
            ObjectLockedError: retention or legal hold forbids it.
            StorageUnavailableError.
        """
        ...

    def delete_many(self, keys: Sequence[str]) -> int:
        """Remove many objects (missing keys are not errors); return how many existed.

        Every object is checked before the first is removed: one under retention or legal
        hold makes the whole call refuse with nothing removed (a lock placed concurrently
        may still stop it half-way; the backend refuses that object). Durable when it
        returns, like ``delete``, but cheaper for whole trees: fs syncs each surviving
        directory once instead of once per object.

        Raises:
            ObjectLockedError, StorageUnavailableError, InvalidKeyError.
        """
        ...

    def set_retention(self, key: str, retain_until: datetime) -> StoredObject:
        """Protect the object until ``retain_until``; retention can be extended, never shortened.

        Raises:
            ObjectLockedError: ``retain_until`` is earlier than a retention still in force.
            ObjectNotFoundError, StorageUnavailableError.
        """
        ...

    def set_legal_hold(self, key: str, hold: bool) -> StoredObject:
        """Place (``hold=True``) or lift a legal hold; while held, ``delete`` is refused.

        Raises:
            ObjectNotFoundError, StorageUnavailableError.
        """
        ...

    def close(self) -> None:
        """Release connections and file handles."""
        ...


@runtime_checkable
class SweepsLeftovers(Protocol):
    """An optional capability of a :class:`Storage`: remove what killed writes left behind.

    A write killed before it published leaves hidden, invisible bytes (fs: temp files and
    the staging copy of a package directory) that no key names, so no delete reaches them.
    S3 has the same thing in incomplete multipart uploads, which a bucket lifecycle rule
    (``AbortIncompleteMultipartUpload``) removes; it needs no method here.
    """

    def remove_leftovers(self, prefix: str, older_than: datetime) -> int:
        """Remove the hidden leftovers of unfinished writes directly below ``prefix`` (ends
        with ``/``) last changed before ``older_than`` (older than any write still running);
        return how many.

        Raises:
            StorageUnavailableError.
            ValueError: ``prefix`` does not end with ``/``, or ``older_than`` is naive.
        """
        ...


@runtime_checkable
class ClaimsBeforeStoring(Protocol):
    """An optional capability of a :class:`Storage`: ``put_batches`` claims every key of its
    ``exclusive`` batches before it stores anything (S3: the create guard, or a HEAD, sent
    at once with a first ``redo`` batch) and raises :class:`ObjectExistsError` with nothing
    stored when one exists, so a caller needs no existence check of its own first.
    """

    claims_before_storing: bool


@runtime_checkable
class ListsChildren(Protocol):
    """An optional capability of a :class:`Storage`: list one level below a prefix.

    ``aips/`` holds ten objects per package; finding the package ids through ``keys`` walks
    every one of them, this lists only the next level (S3 calls it a delimiter listing).
    """

    def children(self, prefix: str) -> Iterator[str]:
        """The distinct next segments of the keys below ``prefix`` (which ends with ``/``),
        in lexicographic order: ``name`` for the object ``prefix + name``, ``name/`` when
        deeper keys start with ``prefix + name + "/"``.

        Raises:
            StorageUnavailableError.
        """
        ...
