"""``FsStorage``: the Storage protocol on a local filesystem directory.

Object ``a/b/c`` is the file ``<root>/a/b/c``. Next to it, a hidden sidecar ``.c.meta``
records ``{"ino", "size", "sha256", "retain_until", "legal_hold"}``. Names starting with a dot
are never valid keys (see :func:`check_key`), so temp files and sidecars are invisible to
``keys()``, ``exists()`` and ``open()``.

Write protocol (``put``): stream into a temp file in the target directory while hashing,
check size and SHA-256 (mismatch: temp removed, :class:`IntegrityError`, nothing stored),
fsync, write the sidecar temp (naming the data inode), then publish the data with
``rename`` (overwrite) or ``os.link`` (``if_absent``: fails atomically with EEXIST, so of
concurrent creators exactly one wins), publish the sidecar with ``rename``, remove the temps
and fsync the directory. Readers see the whole object or none.

The sidecar is trusted only when its ``ino`` and ``size`` match the data file; otherwise (a
crash between the two publishes, or a lost race) ``stat`` recomputes the SHA-256 and the
object counts as having no retention and no hold.

Retention and legal hold are EMULATED: ``delete`` and overwriting ``put`` refuse with
:class:`ObjectLockedError` while ``retain_until`` lies in the future (per the injected
``clock``) or a hold is set. Nothing stops another process, an operator or the OS from
deleting the files: a filesystem cannot enforce WORM. Use the S3 backend with object lock
(COMPLIANCE mode) where retention must hold against administrators.

fs keeps no object and its "directory" prefix side by side (``a/b`` and ``a/b/c``): such a put
raises :class:`InvalidKeyError`. Every ``OSError`` becomes :class:`StorageUnavailableError`
(``from exc``), except a missing file on read, which is :class:`ObjectNotFoundError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from archive.errors import (
    IntegrityError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
)
from archive.model import StoredObject
from archive.storage._fsio import Reader as _Reader
from archive.storage._fsio import Unavailable as _Unavailable
from archive.storage._fsio import fsync_dir as _fsync_dir
from archive.storage.base import check_key

__all__ = ["FsStorage"]

_CHUNK = 1024 * 1024


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FsStorage:
    """Objects as files under ``root``; see the module docstring for guarantees and limits."""

    name = "fs"

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        """Use (and create) the directory ``root``.

        Raises:
            StorageUnavailableError: ``root`` cannot be created.
        """
        self.root = Path(root)
        self._clock = clock
        with _Unavailable(f"create {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)

    # -- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @staticmethod
    def _meta_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta")

    def _ensure_dir(self, key: str, directory: Path) -> None:
        created: list[Path] = []
        current = directory
        while not current.is_dir():
            created.append(current)
            current = current.parent
        for folder in reversed(created):
            try:
                folder.mkdir()
            except FileExistsError as exc:
                if not folder.is_dir():
                    raise InvalidKeyError(key, f"{folder.name!r} is already an object") from exc
            except NotADirectoryError as exc:
                raise InvalidKeyError(key, "a prefix of it is already an object") from exc
            _fsync_dir(folder.parent)

    # -- metadata sidecar --------------------------------------------------------------------

    def _read_meta(self, path: Path) -> dict[str, Any] | None:
        """The sidecar if it describes the current data file, else None."""
        try:
            meta: dict[str, Any] = json.loads(self._meta_path(path).read_bytes())
            info = path.stat()
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a torn or foreign sidecar is ignored, as if absent
        if meta.get("ino") != info.st_ino or meta.get("size") != info.st_size:
            return None
        return meta

    def _write_meta(self, path: Path, meta: dict[str, Any]) -> Path:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.metatmp")
        with open(tmp, "wb") as handle:
            handle.write(json.dumps(meta, sort_keys=True).encode())
            handle.flush()
            os.fsync(handle.fileno())
        return tmp

    def _lock_of(self, key: str, meta: dict[str, Any] | None) -> None:
        if meta is None:
            return
        until = meta.get("retain_until")
        retain_until = datetime.fromisoformat(until) if until else None
        hold = bool(meta.get("legal_hold"))
        if hold or (retain_until is not None and retain_until > self._clock()):
            raise ObjectLockedError(key, retain_until, legal_hold=hold)

    # -- protocol ----------------------------------------------------------------------------

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
        """Store ``size`` bytes from ``data`` durably and atomically (see module docstring).

        Raises:
            ObjectExistsError: ``if_absent`` and the key exists.
            ObjectLockedError: overwriting an object under retention or legal hold.
            IntegrityError: size or SHA-256 mismatch; nothing is stored.
            InvalidKeyError: unsafe key, or it collides with an object prefix.
            StorageUnavailableError: the filesystem failed; nothing is stored.
            ValueError: ``retain_until`` is naive.
        """
        path = self._path(key)
        if retain_until is not None and retain_until.tzinfo is None:
            raise ValueError("retain_until must be timezone-aware")
        with _Unavailable(f"put {key}"):
            if path.is_file():
                if if_absent:
                    raise ObjectExistsError(key)
                self._lock_of(key, self._read_meta(path))
            self._ensure_dir(key, path.parent)
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
            meta_tmp: Path | None = None
            try:
                digest, written = self._write_temp(tmp, data, size)
                if written != size or digest != sha256.lower():
                    raise IntegrityError(key, sha256.lower(), digest)
                meta = {
                    "ino": tmp.stat().st_ino,
                    "size": written,
                    "sha256": digest,
                    "retain_until": retain_until.isoformat() if retain_until else None,
                    "legal_hold": False,
                }
                meta_tmp = self._write_meta(path, meta)
                self._publish(key, tmp, path, if_absent)
                os.replace(meta_tmp, self._meta_path(path))
                meta_tmp = None
            finally:
                for leftover in (tmp, meta_tmp):
                    if leftover is not None:
                        with contextlib.suppress(FileNotFoundError):
                            leftover.unlink()
            _fsync_dir(path.parent)
        return StoredObject(key, written, digest, retain_until, False)

    @staticmethod
    def _write_temp(tmp: Path, data: BinaryIO, size: int) -> tuple[str, int]:
        digest = hashlib.sha256()
        written = 0
        with open(tmp, "xb") as handle:
            while written <= size:
                chunk = data.read(min(_CHUNK, size + 1 - written))
                if not chunk:
                    break
                digest.update(chunk)
                handle.write(chunk)
                written += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        return digest.hexdigest(), written

    @staticmethod
    def _publish(key: str, tmp: Path, path: Path, if_absent: bool) -> None:
        try:
            if if_absent:
                os.link(tmp, path)  # atomic create-if-absent: EEXIST if another won
            else:
                os.replace(tmp, path)
        except FileExistsError as exc:
            raise ObjectExistsError(key) from exc
        except IsADirectoryError as exc:
            raise InvalidKeyError(key, "it is already a prefix of other objects") from exc
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY):
                raise InvalidKeyError(key, "it is already a prefix of other objects") from exc
            raise

    def open(
        self, key: str, *, offset: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """Open the object (or ``length`` bytes from ``offset``) for streaming reads.

        Raises:
            ObjectNotFoundError, StorageUnavailableError, InvalidKeyError.
            ValueError: a negative offset or length.
        """
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        path = self._path(key)
        with _Unavailable(f"open {key}", key):
            if path.is_dir():
                raise ObjectNotFoundError(key)
            handle = open(path, "rb")  # noqa: SIM115  (ownership passes to the reader)
            if offset:
                handle.seek(offset)
        return io.BufferedReader(_Reader(handle, key, length), _CHUNK)

    def stat(self, key: str) -> StoredObject:
        """Raises: ObjectNotFoundError, StorageUnavailableError, InvalidKeyError."""
        path = self._path(key)
        with _Unavailable(f"stat {key}", key):
            if not path.is_file():
                raise ObjectNotFoundError(key)
            meta = self._read_meta(path)
            if meta is None:  # after a crash between publishes: recompute, no lock known
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                return StoredObject(key, path.stat().st_size, digest.hexdigest())
        until = meta.get("retain_until")
        return StoredObject(
            key=key,
            size=int(meta["size"]),
            sha256=str(meta["sha256"]),
            retain_until=datetime.fromisoformat(until) if until else None,
            legal_hold=bool(meta.get("legal_hold")),
        )

    def exists(self, key: str) -> bool:
        """Raises: StorageUnavailableError, InvalidKeyError."""
        path = self._path(key)
        with _Unavailable(f"exists {key}"):
            return path.is_file()

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix`` in lexicographic order, streamed (memory ~ depth).

        Raises:
            StorageUnavailableError.
        """
        with _Unavailable(f"list {prefix!r}"):
            if not self.root.is_dir():
                raise FileNotFoundError(errno.ENOENT, "storage root is missing", str(self.root))
        yield from self._walk(self.root, "", prefix)

    def _walk(self, directory: Path, base: str, prefix: str) -> Iterator[str]:
        with _Unavailable(f"list {base or '/'}"):
            try:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(directory)]
            except FileNotFoundError:
                return  # removed while listing: it holds no keys any more
        # A directory sorts as "name/": every key inside starts with that, which makes this
        # depth-first walk produce keys in plain lexicographic order.
        for name, is_dir in sorted(entries, key=lambda e: e[0] + "/" if e[1] else e[0]):
            if name.startswith("."):
                continue
            key = base + name
            if is_dir:
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(directory / name, key + "/", prefix)
            elif key.startswith(prefix):
                yield key

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error.

        Raises:
            ObjectLockedError: retention or legal hold (emulated) forbids it.
            StorageUnavailableError, InvalidKeyError.
        """
        path = self._path(key)
        with _Unavailable(f"delete {key}"):
            if not path.is_file():
                return
            self._lock_of(key, self._read_meta(path))
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                self._meta_path(path).unlink()
            _fsync_dir(path.parent)
            self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty parent directories up to (not including) the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone): stop
            _fsync_dir(directory.parent)
            directory = directory.parent

    def set_retention(self, key: str, retain_until: datetime) -> StoredObject:
        """Extend the (emulated) retention; shortening one still in force is refused.

        Raises:
            ObjectLockedError: ``retain_until`` is earlier than the retention in force.
            ObjectNotFoundError, StorageUnavailableError, InvalidKeyError.
            ValueError: ``retain_until`` is naive.
        """
        if retain_until.tzinfo is None:
            raise ValueError("retain_until must be timezone-aware")
        current = self.stat(key)
        if (
            current.retain_until is not None
            and current.retain_until > self._clock()
            and retain_until < current.retain_until
        ):
            raise ObjectLockedError(key, current.retain_until, legal_hold=current.legal_hold)
        return self._rewrite_meta(key, current, retain_until, current.legal_hold)

    def set_legal_hold(self, key: str, hold: bool) -> StoredObject:
        """Place or lift the (emulated) legal hold.

        Raises:
            ObjectNotFoundError, StorageUnavailableError, InvalidKeyError.
        """
        current = self.stat(key)
        return self._rewrite_meta(key, current, current.retain_until, hold)

    def _rewrite_meta(
        self, key: str, current: StoredObject, retain_until: datetime | None, hold: bool
    ) -> StoredObject:
        path = self._path(key)
        with _Unavailable(f"update {key}", key):
            meta = {
                "ino": path.stat().st_ino,
                "size": current.size,
                "sha256": current.sha256,
                "retain_until": retain_until.isoformat() if retain_until else None,
                "legal_hold": hold,
            }
            os.replace(self._write_meta(path, meta), self._meta_path(path))
            _fsync_dir(path.parent)
        return StoredObject(key, current.size, current.sha256, retain_until, hold)

    def close(self) -> None:
        """Nothing to release: every call opens and closes its own files."""
