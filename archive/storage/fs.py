"""``FsStorage``: the Storage protocol on a local filesystem directory.

Object ``a/b/c`` is the file ``<root>/a/b/c``. Its metadata ``{"size", "sha256",
"retain_until", "legal_hold"}`` is a JSON extended attribute ``user.kluis.meta`` on the file
itself, so data and metadata share one inode: they are published together and can never
disagree. Names starting with a dot are never valid keys (see :func:`check_key`), so temp
files are invisible to ``keys()``, ``exists()`` and ``open()``. The filesystem must keep user
extended attributes (ext4, xfs, btrfs, zfs, tmpfs on Linux >= 6.6; the constructor checks);
copy a storage root with tools that keep them (``cp -a``, ``rsync -X``).

Write protocol (``put``): stream into a temp file in the target directory while hashing, check
size and SHA-256 (mismatch: temp removed, :class:`IntegrityError`, nothing stored), set the
metadata attribute, fsync, then publish with ``rename`` (overwrite) or ``os.link``
(``if_absent``: fails atomically with EEXIST, so of concurrent creators exactly one wins) and
fsync the directory. Readers see the whole object or none. ``put_new`` does the same for many
small objects with one fsync per file and one per directory (not per object).

Objects written before metadata moved into the attribute have a hidden sidecar ``.c.meta``
(with the data file's ``ino``): it is still read when the attribute is missing and trusted
only when its ``ino`` and ``size`` match; ``set_retention``/``set_legal_hold`` and ``delete``
remove it. An object with neither (replaced behind our back) gets its SHA-256 recomputed and
counts as having no retention and no hold.

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
from collections.abc import Callable, Iterator, Sequence
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
    StorageUnavailableError,
)
from archive.model import StoredObject
from archive.storage._fsio import Reader as _Reader
from archive.storage._fsio import Unavailable as _Unavailable
from archive.storage._fsio import fsync_dir as _fsync_dir
from archive.storage._parallel import Parallel
from archive.storage.base import NewObject, check_key

__all__ = ["FsStorage"]

_CHUNK = 1024 * 1024
_XATTR = "user.kluis.meta"
_PROBE = "user.kluis.probe"
_NO_ATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP})
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
SYNC_WORKERS = 8
"""How many fsyncs ``put_new`` runs at once."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FsStorage:
    """Objects as files under ``root``; see the module docstring for guarantees and limits."""

    name = "fs"

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = _utcnow) -> None:
        """Use (and create) the directory ``root``.

        Raises:
            StorageUnavailableError: ``root`` cannot be created, or its filesystem keeps no
                user extended attributes.
        """
        self.root = Path(root)
        self._clock = clock
        # Concurrent fsyncs share journal commits (group commit) instead of queueing.
        self._parallel = Parallel(SYNC_WORKERS, "fs-fsync")
        with _Unavailable(f"create {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
            _check_xattrs(self.root)

    # -- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    @staticmethod
    def _legacy_meta_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta")

    @staticmethod
    def _temp_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")

    def _ensure_dir(self, key: str, directory: Path, changed: dict[Path, None]) -> None:
        """Create ``directory`` and missing parents; their parents go into ``changed``, the
        directories whose entries must be fsync'd before the object counts as durable."""
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
            changed[folder.parent] = None

    # -- metadata ------------------------------------------------------------------------------

    def _read_meta(self, path: Path) -> dict[str, Any] | None:
        """The object's metadata (attribute, else a matching legacy sidecar), or None."""
        try:
            raw = os.getxattr(path, _XATTR)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in _NO_ATTR:
                raise
            return self._read_legacy_meta(path)
        try:
            meta: dict[str, Any] = json.loads(raw)
        except ValueError:
            return None  # a torn or foreign attribute is ignored, as if absent
        return meta

    def _read_legacy_meta(self, path: Path) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = json.loads(self._legacy_meta_path(path).read_bytes())
            info = path.stat()
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        if meta.get("ino") != info.st_ino or meta.get("size") != info.st_size:
            return None
        return meta

    def _drop_legacy_meta(self, path: Path) -> bool:
        try:
            self._legacy_meta_path(path).unlink()
        except FileNotFoundError:
            return False
        return True

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
        _check_aware(retain_until)
        with _Unavailable(f"put {key}"):
            replaces = path.is_file()
            if replaces:
                if if_absent:
                    raise ObjectExistsError(key)
                self._lock_of(key, self._read_meta(path))
            changed: dict[Path, None] = {}
            self._ensure_dir(key, path.parent, changed)
            tmp = self._temp_path(path)
            try:
                digest, written = self._write_temp(tmp, data, size, retain_until)
                if written != size or digest != sha256.lower():
                    raise IntegrityError(key, sha256.lower(), digest)
                self._publish(key, tmp, path, if_absent)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            if replaces:
                self._drop_legacy_meta(path)
            changed[path.parent] = None
            for directory in changed:
                _fsync_dir(directory)
        return StoredObject(key, written, digest, retain_until, False)

    def put_new(
        self, objects: Sequence[NewObject], *, retain_until: datetime | None = None
    ) -> None:
        """Store small new objects; durable (files and directory entries) when it returns.

        The directories are created first; then each object is written to a temp file,
        fsync'd and renamed into place, ``SYNC_WORKERS`` objects at a time (concurrent fsyncs
        share journal commits instead of queueing for one each); last, each changed directory
        is fsync'd once. An existing object with the same bytes is kept (an identical retry).

        Raises:
            IntegrityError: bytes do not match their SHA-256; nothing is stored.
            ObjectExistsError: a key holds other bytes.
            InvalidKeyError, StorageUnavailableError (some objects may be stored).
            ValueError: ``retain_until`` is naive.
        """
        _check_aware(retain_until)
        paths = [self._path(obj.key) for obj in objects]
        for obj in objects:
            digest = hashlib.sha256(obj.data).hexdigest()
            if digest != obj.sha256.lower():
                raise IntegrityError(obj.key, obj.sha256.lower(), digest)
        until = retain_until.isoformat() if retain_until else None
        changed: dict[Path, None] = {}

        def store(item: tuple[NewObject, Path]) -> None:
            obj, path = item
            meta = {"size": len(obj.data), "sha256": obj.sha256.lower(), "retain_until": until}
            self._store_new(obj, path, _encode({**meta, "legal_hold": False}))

        with _Unavailable(f"put {len(objects)} objects"):
            for obj, path in zip(objects, paths, strict=True):
                self._ensure_dir(obj.key, path.parent, changed)
                changed[path.parent] = None
            self._parallel.run(store, list(zip(objects, paths, strict=True)))
            self._parallel.run(_fsync_dir, list(changed))

    def _store_new(self, obj: NewObject, path: Path, meta: bytes) -> None:
        """Write, fsync and publish one object of ``put_new`` (its directory exists)."""
        if path.is_dir():
            raise InvalidKeyError(obj.key, "it is already a prefix of other objects")
        if path.exists():  # a key has one writer (see put_new): no race to guard against
            if self.stat(obj.key).sha256 != obj.sha256.lower():
                raise ObjectExistsError(obj.key)
            return
        tmp = self._temp_path(path)
        try:
            fd = os.open(tmp, _CREATE, 0o644)
            try:
                _write_all(fd, obj.data)
                os.setxattr(fd, _XATTR, meta)
                os.fsync(fd)  # durable before visible
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

    @staticmethod
    def _write_temp(
        tmp: Path, data: BinaryIO, size: int, retain_until: datetime | None
    ) -> tuple[str, int]:
        """Write, hash, attach the metadata attribute and fsync; (sha256, bytes written)."""
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
            meta = {
                "size": written,
                "sha256": digest.hexdigest(),
                "retain_until": retain_until.isoformat() if retain_until else None,
                "legal_hold": False,
            }
            os.setxattr(handle.fileno(), _XATTR, _encode(meta))
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
            if meta is None:  # written behind our back: recompute, no lock known
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
        root = str(self.root)
        with _Unavailable(f"list {prefix!r}"):
            if not os.path.isdir(root):
                raise FileNotFoundError(errno.ENOENT, "storage root is missing", root)
        # Start in the deepest directory the prefix names in full (``aips/<id>/`` lists one
        # package, not every entry of ``aips/``): every matching key lies below it.
        head = prefix.rpartition("/")[0]
        if head and not any(s.startswith(".") or s in ("", "..") for s in head.split("/")):
            start = root + "/" + head
            if os.path.isdir(start) and not os.path.islink(start):
                yield from self._walk(start, head + "/", prefix)
            return
        yield from self._walk(root, "", prefix)

    def _walk(self, directory: str, base: str, prefix: str) -> Iterator[str]:
        with _Unavailable(f"list {base or '/'}"):
            try:
                with os.scandir(directory) as found:
                    entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in found]
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
                    yield from self._walk(directory + "/" + name, key + "/", prefix)
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
            self._drop_legacy_meta(path)
            _fsync_dir(path.parent)
            self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty parent directories below the top-level ones (``aips``,
        ``commit-intents``, ...: they empty and fill again all the time)."""
        while directory.parent != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or already gone): stop
            _fsync_dir(directory.parent)
            directory = directory.parent

    def delete_many(self, keys: Sequence[str]) -> int:
        """Remove many objects; see :meth:`Storage.delete_many`.

        Every lock is checked before anything is unlinked. Files are unlinked and emptied
        directories removed without syncing each; then every directory that survives is
        synced once. A removed directory needs no sync of its own: the sync of the surviving
        parent makes its removal, and so that of everything that was in it, durable.

        Plain string paths and one ``getxattr`` per key (it also tells whether the object
        exists): this runs for every file of every disposed package. A legacy sidecar is
        removed with its object when the object's metadata came from it; one left behind
        otherwise (a crash between two writes) is found when its directory will not empty.

        Raises:
            ObjectLockedError: retention or legal hold (emulated) on any of them.
            StorageUnavailableError, InvalidKeyError.
        """
        root = str(self.root)
        paths = [(key, root + "/" + check_key(key)) for key in keys]
        with _Unavailable(f"delete {len(paths)} objects"):
            present: list[tuple[str, bool]] = []  # (path, metadata from a legacy sidecar)
            for key, path in paths:
                found = self._present_meta(path)
                if found is None:
                    continue
                meta, legacy = found
                self._lock_of(key, meta)
                present.append((path, legacy))
            emptied: dict[str, list[str]] = {}  # directory -> names unlinked in it
            for path, legacy in present:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                if legacy:
                    self._drop_legacy_meta(Path(path))
                directory, _, name = path.rpartition("/")
                emptied.setdefault(directory, []).append(name)
            self._remove_emptied(root, emptied)
        return len(present)

    def _present_meta(self, path: str) -> tuple[dict[str, Any] | None, bool] | None:
        """``(metadata, from a legacy sidecar)`` of the object at ``path``; None if absent."""
        try:
            raw = os.getxattr(path, _XATTR)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno not in _NO_ATTR:
                raise
            if not os.path.isfile(path):
                return None
            return self._read_legacy_meta(Path(path)), True
        if not os.path.isfile(path):
            return None  # a directory is no object
        try:
            meta: dict[str, Any] = json.loads(raw)
        except ValueError:
            return None, False  # a torn or foreign attribute is ignored, as if absent
        return meta, False

    def _remove_emptied(self, root: str, emptied: dict[str, list[str]]) -> None:
        """Remove every emptied directory and its ancestors below the top level, deepest
        first (each tried once: one that is not empty survives, and so do its ancestors),
        then sync every surviving directory once."""
        candidates: dict[str, None] = {}
        survivors: dict[str, None] = {}
        for directory in emptied:
            current = directory
            while (parent := os.path.dirname(current)) != root and parent.startswith(root + "/"):
                candidates[current] = None
                current = parent
            if current == directory:
                survivors[directory] = None  # a top-level one
        kept: set[str] = set()
        for directory in sorted(candidates, key=lambda d: d.count("/"), reverse=True):
            if directory in kept:
                survivors[directory] = None
                continue
            if not self._rmdir(directory, emptied.get(directory, ())):
                survivors[directory] = None
                parent = os.path.dirname(directory)
                while parent != root and parent.startswith(root):
                    kept.add(parent)
                    parent = os.path.dirname(parent)
                continue
            parent = os.path.dirname(directory)
            if os.path.dirname(parent) == root:
                survivors[parent] = None  # a top-level directory
        for directory in survivors:
            with contextlib.suppress(FileNotFoundError):
                _fsync_dir(Path(directory))

    def _rmdir(self, directory: str, unlinked: Sequence[str]) -> bool:
        """Remove ``directory`` if it is empty (True also when it is gone already). Legacy
        sidecars of the objects just unlinked in it do not keep it: they go first."""
        for attempt in (0, 1):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                return True
            except OSError:
                dropped = [self._drop_legacy_meta(Path(directory, n)) for n in unlinked]
                if attempt or not any(dropped):
                    return False
                continue
            return True
        return False

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
                "size": current.size,
                "sha256": current.sha256,
                "retain_until": retain_until.isoformat() if retain_until else None,
                "legal_hold": hold,
            }
            # One attribute replaced in place: atomic, and durable with the file's fsync.
            fd = os.open(path, os.O_RDONLY)
            try:
                os.setxattr(fd, _XATTR, _encode(meta))
                os.fsync(fd)
            finally:
                os.close(fd)
            if self._drop_legacy_meta(path):
                _fsync_dir(path.parent)
        return StoredObject(key, current.size, current.sha256, retain_until, hold)

    def close(self) -> None:
        """Stop the fsync threads; every call opens and closes its own files."""
        self._parallel.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _encode(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()


def _check_aware(retain_until: datetime | None) -> None:
    if retain_until is not None and retain_until.tzinfo is None:
        raise ValueError("retain_until must be timezone-aware")


def _check_xattrs(root: Path) -> None:
    """Raise :class:`StorageUnavailableError` unless ``root`` keeps user extended attributes."""
    try:
        os.setxattr(root, _PROBE, b"1")
        os.removexattr(root, _PROBE)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise StorageUnavailableError(
                "fs", f"{root}: the filesystem keeps no user extended attributes"
            ) from exc
        raise
