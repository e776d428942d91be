"""OS-level helpers of the fs backend (private): error translation, reads, directory fsync.

Invariant: nothing here lets an ``OSError`` out; it becomes :class:`StorageUnavailableError`
(``from exc``), or :class:`ObjectNotFoundError` for a missing file when a key is known.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, BinaryIO

from archive.errors import ObjectNotFoundError, StorageUnavailableError


class Unavailable(contextlib.AbstractContextManager[None]):
    """Translate OSError into StorageUnavailableError (ENOENT into ObjectNotFoundError)."""

    def __init__(self, what: str, key: str | None = None) -> None:
        self.what = what
        self.key = key

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, FileNotFoundError) and self.key is not None:
            raise ObjectNotFoundError(self.key) from exc
        if isinstance(exc, OSError):
            raise StorageUnavailableError("fs", f"{self.what}: {exc}") from exc


class Reader(io.RawIOBase):
    """A raw reader over an open file that raises only archive errors."""

    def __init__(self, handle: BinaryIO, key: str, limit: int | None = None) -> None:
        self._handle = handle
        self._key = key
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self._left is not None:
            view = view[: self._left]
        with Unavailable(f"read {self._key}"):
            n: int = self._handle.readinto(view)  # type: ignore[attr-defined]
        if self._left is not None:
            self._left -= n
        return n

    def close(self) -> None:
        with Unavailable(f"close {self._key}"):
            self._handle.close()
        super().close()


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
