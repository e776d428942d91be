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
from typing import BinaryIO, Protocol

from archive.errors import InvalidKeyError
from archive.model import StoredObject

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@=+-]*$")


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidKeyError`."""
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
