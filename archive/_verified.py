"""A read stream that checks a package file against its root METS entry while it is read
(private to :class:`archive.store.AipStore`).

Invariant: a caller that reads the stream to its end has read exactly the bytes the root METS
lists, or gets :class:`IntegrityError` from the read that reached the end (or that went past
the listed size) instead of a silent end. A stream abandoned before its end (a byte range)
is not checked: only a whole file has a known hash.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO

from archive.errors import IntegrityError
from archive.model import FileEntry

__all__ = ["VerifiedStream"]


class VerifiedStream(io.RawIOBase):
    """Wraps an open storage stream of ``key``; hashes what passes through (one pass, no
    second read of the file)."""

    def __init__(self, inner: BinaryIO, key: str, entry: FileEntry) -> None:
        self._inner = inner
        self._key = key
        self._entry = entry
        self._digest = hashlib.sha256()
        self._size = 0
        self._ended = False
        self._failure: IntegrityError | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = self._inner.read()
            self._account(data, at_end=True)
        else:
            data = self._inner.read(size)
            self._account(data, at_end=not data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        view[: len(data)] = data
        self._account(data, at_end=not data)
        return len(data)

    def _account(self, data: bytes, *, at_end: bool) -> None:
        if self._failure is not None:
            raise self._failure
        if self._ended:
            return
        self._digest.update(data)
        self._size += len(data)
        if self._size > self._entry.size or at_end:
            self._ended = True
            actual = self._digest.hexdigest()
            if self._size != self._entry.size or actual != self._entry.sha256:
                self._failure = IntegrityError(self._key, self._entry.sha256, actual)
                raise self._failure

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()
