"""OS-level helpers of the fs backend (private): error translation, reads, fsync, and a
rename that never replaces (``renameat2``, through ctypes: the os module has no flags).

Invariant: nothing here lets an ``OSError`` out; it becomes :class:`StorageUnavailableError`
(``from exc``), or :class:`ObjectNotFoundError` for a missing file when a key is known.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import json
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


XATTR = "user.kluis.meta"
"""The extended attribute holding an object's metadata JSON (on the object's own file)."""
NO_ATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})
"""``getxattr`` errors that mean "no metadata attribute" rather than a failure."""


def _libc_function(name: str, argtypes: list[Any], restype: Any) -> Any:
    """The C library's function ``name`` with its signature (ctypes releases the GIL while
    it runs), or None where there is no such function (not Linux; an older libc)."""
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = restype
    return function


_GETXATTR = _libc_function(
    "getxattr", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t],
    ctypes.c_ssize_t,
)  # fmt: skip
_XATTR_BYTES = XATTR.encode()
_META_HINT = 512
"""Room for any metadata attribute ``FsStorage`` writes (~150 bytes)."""


def read_meta_attr(path: str) -> dict[str, Any] | None:
    """The metadata attribute of the file at ``path``, decoded; None when it is torn or
    foreign (ignored, as if absent).

    One ``getxattr`` system call into a buffer with room to spare: ``os.getxattr`` tries
    128 bytes first and, the attribute being longer, calls again with 64 KiB - two calls
    (and two GIL hand-offs) for every object checked. Through ctypes (which releases the
    GIL) when the C library has it; ``os.getxattr`` otherwise or for a longer attribute.

    Raises:
        OSError: as ``os.getxattr`` (``FileNotFoundError``, ``ENODATA``: no attribute, ...).
    """
    raw: bytes
    if _GETXATTR is None:
        raw = os.getxattr(path, XATTR)
    else:
        buffer = ctypes.create_string_buffer(_META_HINT)
        size = _GETXATTR(os.fsencode(path), _XATTR_BYTES, buffer, _META_HINT)
        if size >= 0:
            raw = buffer.raw[:size]
        else:
            code = ctypes.get_errno()
            if code != errno.ERANGE:
                raise OSError(code, os.strerror(code), path)
            raw = os.getxattr(path, XATTR)  # longer than any we write: someone else's
    try:
        meta: dict[str, Any] = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by name (Linux syncs through a read-only descriptor)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_SYNC_FILE_RANGE = _libc_function(
    "sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint], ctypes.c_int
)
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes from ``offset`` of ``fd`` to the disk
    now, without waiting (``sync_file_range(SYNC_FILE_RANGE_WRITE)``; ctypes releases the
    GIL). A big object's final fsync then waits for its last chunks only instead of all of
    them. Only a hint: durability still comes from that fsync alone, so a failure (or a
    system without the call) changes nothing but speed and is ignored."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


_RENAMEAT2 = _libc_function(  # None also with glibc < 2.28
    "renameat2", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint],
    ctypes.c_int,
)  # fmt: skip
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_NO_NOREPLACE = frozenset({errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename ``src`` to ``dst`` atomically unless ``dst`` exists (:class:`FileExistsError`,
    also for an empty directory, which a plain rename would replace).

    Returns False, having renamed nothing, where the system cannot do that (no
    ``renameat2``, or a filesystem without ``RENAME_NOREPLACE``): the caller falls back.
    """
    if _RENAMEAT2 is None:
        return False
    flags = _RENAME_NOREPLACE
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _NO_NOREPLACE:
        return False
    raise OSError(code, os.strerror(code), str(dst))  # EEXIST -> FileExistsError
