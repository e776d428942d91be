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
fsync the directory. Readers see the whole object or none. ``put_new`` and ``put_batches`` do
the same for many small objects with one round of concurrent file fsyncs for all of them and
one fsync per changed directory per batch (not per object): see :meth:`FsStorage.put_batches`.

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
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from archive.errors import (
    ArchiveError,
    IntegrityError,
    InvalidKeyError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
    StorageUnavailableError,
)
from archive.model import StoredObject
from archive.storage._fs_remove import TreeRemover
from archive.storage._fs_remove_worker import RemovalWorker
from archive.storage._fsio import NO_ATTR as _NO_ATTR
from archive.storage._fsio import XATTR as _XATTR
from archive.storage._fsio import Reader as _Reader
from archive.storage._fsio import Unavailable as _Unavailable
from archive.storage._fsio import fsync_dir as _fsync_dir
from archive.storage._fsio import fsync_path as _fsync_path
from archive.storage._fsio import read_meta_attr as _read_meta_attr
from archive.storage._fsio import rename_noreplace as _rename_noreplace
from archive.storage._fsio import start_writeback as _start_writeback
from archive.storage._parallel import Parallel
from archive.storage.base import NewBatch, NewObject, check_key

__all__ = ["FsStorage"]

_CHUNK = 1024 * 1024
_OVERLAP_BYTES = 8 * _CHUNK
_LEFTOVER = re.compile(r"\..+\.[0-9a-f]{16}\.tmp")
"""Names of hidden temp files and staging directories (:meth:`FsStorage._temp_path`)."""
_SMALL_READ = 64 * 1024
"""``open`` reads objects up to this size at once (bounded memory either way)."""
_PROBE = "user.kluis.probe"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
_READ = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
SYNC_WORKERS = 32
"""How many fsyncs ``put_new`` and ``put_batches`` run at once (a package commit has 11 files
and 10 staged directories: all of them in one round share one journal commit and flush)."""


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
        self._root_str = str(self.root)
        self._clock = clock
        # Concurrent fsyncs share journal commits (group commit) instead of queueing.
        self._parallel = Parallel(SYNC_WORKERS, "fs-fsync")
        self._noreplace = True  # renameat2(RENAME_NOREPLACE) works here (until it does not)
        self._removal_worker = RemovalWorker()  # started by the first big delete_many
        with _Unavailable(f"create {self.root}"):
            self.root.mkdir(parents=True, exist_ok=True)
            _check_xattrs(self.root)

    # -- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _str_path(self, key: str) -> str:
        """``_path`` as a plain string (cheaper: no pathlib objects on the read path)."""
        return self._root_str + "/" + check_key(key)

    @staticmethod
    def _legacy_meta_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.meta")

    @staticmethod
    def _temp_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")

    def _ensure_dir(
        self, key: str, directory: Path, changed: dict[Path, None], known: set[Path] | None = None
    ) -> None:
        """Create ``directory`` and missing parents; their parents go into ``changed``, the
        directories whose entries must be fsync'd before the object counts as durable.
        ``known``: directories this call already made sure of (a batch's objects share most);
        ``directory`` is added to it."""
        if known is not None:
            if directory in known:
                return
            known.add(directory)
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
        """The object's metadata (attribute, else a matching legacy sidecar), or None (a
        torn or foreign attribute is ignored, as if absent)."""
        try:
            return _read_meta_attr(str(path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in _NO_ATTR:
                raise
            return self._read_legacy_meta(path)

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

        One batch of :meth:`put_batches`: every object is written to a temp file and fsync'd,
        ``SYNC_WORKERS`` at a time (concurrent fsyncs share journal commits instead of
        queueing), then renamed into place; last, each changed directory is fsync'd once. An
        existing object with the same bytes is kept (an identical retry).

        Raises:
            IntegrityError: bytes do not match their SHA-256; nothing is stored.
            ObjectExistsError: a key holds other bytes.
            InvalidKeyError, StorageUnavailableError (some objects may be stored).
            ValueError: ``retain_until`` is naive.
        """
        self.put_batches([NewBatch(objects, retain_until)])

    def put_batches(self, batches: Sequence[NewBatch], *, then_delete: Sequence[str] = ()) -> None:
        """Store batches of new objects in order (see :meth:`Storage.put_batches`).

        Every SHA-256 is checked and every object written (hidden, not yet fsync'd) first;
        then ONE round of concurrent fsyncs (a shared journal commit and cache flush) makes
        all the bytes durable while nothing is visible, so the order costs nothing there.
        Then the batches are published in order, each followed by one round of fsyncs of
        the directories that got an entry:

        - a batch under existing directories: its temp files are renamed into place
          (``exclusive``: linked, EEXIST -> :class:`ObjectExistsError`);
        - the last batches, when all their objects lie below one directory that does not
          exist yet (a fresh package: its files and its root METS), were written into a
          hidden copy of that directory (its subdirectories fsync'd in the round above) and
          appear together with ONE ``rename`` that refuses to replace anything
          (``renameat2(RENAME_NOREPLACE)``), followed by one fsync of its parent. They become
          visible at once, each durable before, which is what the order asks; the root METS
          stays a strict conditional create because the directory's creation is one. Where
          that rename is impossible (no ``renameat2``, the directory appeared meanwhile) the
          staged files are renamed out one batch after another instead, as above.

        ``then_delete`` objects are unlinked last without a directory fsync (a crash may
        bring them back, as the protocol allows). ``redo`` batches before a staged directory
        are written but published only if the stage cannot be renamed: with the rename, no
        crash can show part of what they protect. A fresh package commit (intent, files, root
        METS) thus costs two fsync rounds, like writing the same files without any order; a
        crash leaves at worst hidden temp files or a hidden staging directory.

        Raises:
            IntegrityError, ObjectExistsError, ObjectLockedError, InvalidKeyError,
            StorageUnavailableError: see :meth:`Storage.put_batches`.
            ValueError: a ``retain_until`` is naive.
        """
        plan = [self._items(batch) for batch in batches]
        count = sum(len(items) for items in plan)
        with _Unavailable(f"put {count} objects"):
            fresh = self._fresh_directory(plan)
            cut = fresh[0] if fresh else len(plan)
            known: set[Path] = set()
            changed = [
                self._prepare(items, batch.exclusive, known)
                for items, batch in zip(plan[:cut], batches[:cut], strict=True)
            ]
            stage = self._make_stage(fresh[1], plan[cut:], known) if fresh else None
            # Redo records before the stage are only needed if it cannot be renamed at once.
            deferred = stage is not None and all(batch.redo for batch in batches[:cut])
            written = [item for items in plan for item in items if item.tmp is not None]
            try:
                for item in written:
                    _create(item)
                syncs = [item.tmp for item in written if item.tmp is not None]
                self._parallel.run(_fsync_path, syncs + (stage.dirs if stage else []))
                if not deferred:
                    for items, batch, dirs in zip(plan[:cut], batches[:cut], changed, strict=True):
                        self._publish_batch(items, batch.exclusive, dirs)
                if stage is not None and self._publish_stage(stage):
                    for items in plan[cut:]:
                        for item in items:
                            item.tmp = None  # in place with its directory
                elif stage is not None:
                    if deferred:
                        for items, batch, dirs in zip(
                            plan[:cut], batches[:cut], changed, strict=True
                        ):
                            self._publish_batch(items, batch.exclusive, dirs)
                    for items, batch in zip(plan[cut:], batches[cut:], strict=True):
                        dirs = self._prepare(items, batch.exclusive, known, staged=True)
                        self._publish_batch(items, batch.exclusive, dirs)
            finally:
                for item in written:
                    if item.tmp is not None:
                        with contextlib.suppress(FileNotFoundError):
                            item.tmp.unlink()
                if stage is not None and stage.path.exists():
                    shutil.rmtree(stage.path, ignore_errors=True)
            for key in then_delete:
                path = self._path(key)
                if path.is_file():
                    self._lock_of(key, self._read_meta(path))
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    self._drop_legacy_meta(path)

    def _items(self, batch: NewBatch) -> list[_Item]:
        """``batch``'s objects, each SHA-256 checked, with its metadata attribute."""
        _check_aware(batch.retain_until)
        until = batch.retain_until.isoformat() if batch.retain_until else None
        items = []
        for obj in batch.objects:
            digest = hashlib.sha256(obj.data).hexdigest()
            if digest != obj.sha256.lower():
                raise IntegrityError(obj.key, obj.sha256.lower(), digest)
            meta = {"size": len(obj.data), "sha256": digest, "retain_until": until}
            meta["legal_hold"] = False
            items.append(_Item(obj.key, obj.data, digest, self._path(obj.key), _encode(meta)))
        return items

    def _prepare(
        self, items: list[_Item], exclusive: bool, known: set[Path], *, staged: bool = False
    ) -> dict[Path, None]:
        """Create the directories of a batch published by renames; note why an object cannot
        be stored (raised when its batch is published: those before it are stored) and give
        each object to write a temp file (``staged``: it keeps its file in the stage).
        Returns the directories to fsync after publishing the batch."""
        dirs: dict[Path, None] = {}
        for item in items:
            self._ensure_dir(item.key, item.path.parent, dirs, known)
            dirs[item.path.parent] = None
            try:
                mode = os.stat(item.path).st_mode
            except FileNotFoundError:
                if not staged:
                    item.tmp = self._temp_path(item.path)
                continue
            if stat.S_ISDIR(mode):
                item.conflict = InvalidKeyError(item.key, "it is already a prefix of other objects")
            elif exclusive or self.stat(item.key).sha256 != item.sha256:
                item.conflict = ObjectExistsError(item.key)
            elif staged and item.tmp is not None:  # an identical retry: no need of the copy
                item.tmp.unlink()
                item.tmp = None
        return dirs

    def _publish_batch(self, items: list[_Item], exclusive: bool, dirs: dict[Path, None]) -> None:
        for item in items:
            if item.conflict is not None:
                raise item.conflict
        for item in items:
            if item.tmp is not None:
                self._publish(item.key, item.tmp, item.path, exclusive)
                if not exclusive:
                    item.tmp = None  # renamed: nothing left to remove
        self._parallel.run(_fsync_dir, list(dirs))

    def _fresh_directory(self, plan: list[list[_Item]]) -> tuple[int, Path] | None:
        """``(k, directory)`` when the batches from ``k`` on (the longest such run) all lie
        below ``directory``, which does not exist yet, and can be staged (no key is a prefix
        of another or repeated); else None."""
        if not self._noreplace:
            return None
        for k in range(len(plan)):
            items = [item for items in plan[k:] for item in items]
            if not items:
                return None
            directory = Path(os.path.commonpath([item.path.parent for item in items]))
            if self.root not in directory.parents or os.path.lexists(directory):
                continue
            keys = {item.key for item in items}
            prefixes = {p for key in keys for p in _prefixes(key)}
            if len(keys) == len(items) and not keys & prefixes:
                return k, directory
            return None
        return None

    def _make_stage(self, directory: Path, plan: list[list[_Item]], known: set[Path]) -> _Stage:
        """Create the hidden copy of ``directory`` with every subdirectory the objects need,
        and point each object's temp file at its place in it."""
        parents: dict[Path, None] = {}
        key = next(item.key for items in plan for item in items)
        self._ensure_dir(key, directory.parent, parents, known)
        parents[directory.parent] = None
        stage = _Stage(self._temp_path(directory), directory, list(parents), [])
        stage.path.mkdir()
        folders: dict[Path, None] = {stage.path: None}
        try:
            for items in plan:
                for item in items:
                    item.tmp = stage.path.joinpath(item.path.relative_to(directory))
                    folder = item.tmp.parent
                    missing = []
                    while folder not in folders:
                        missing.append(folder)
                        folder = folder.parent
                    for folder in reversed(missing):
                        folder.mkdir()
                        folders[folder] = None
        except BaseException:
            shutil.rmtree(stage.path, ignore_errors=True)
            raise
        stage.dirs = list(folders)
        return stage

    def _publish_stage(self, stage: _Stage) -> bool:
        """Rename the stage into place and fsync its parent; False when it cannot be (then
        nothing of it is visible)."""
        try:
            renamed = _rename_noreplace(stage.path, stage.target)
        except FileExistsError:
            return False  # created meanwhile: publish object by object
        if not renamed:
            self._noreplace = False  # not on this system: do not try again
            return False
        self._parallel.run(_fsync_dir, stage.parents)
        return True

    @staticmethod
    def _write_temp(
        tmp: Path, data: BinaryIO, size: int, retain_until: datetime | None
    ) -> tuple[str, int]:
        """Write, hash, attach the metadata attribute and fsync; (sha256, bytes written).

        From ``_OVERLAP_BYTES`` on, each chunk is hashed on a second thread while it is
        written (both release the GIL): serially, SHA-256 (~1.8 GB/s) and the write add up.
        And every ``_OVERLAP_BYTES`` written start their writeback at once: the disk works
        while we hash and write, so the fsync waits for the tail only (256 MiB: 0.13 s ->
        0.005 s). The fsync alone still makes the object durable.
        """
        digest = hashlib.sha256()
        written = started = 0
        with open(tmp, "xb") as handle, _hasher(size) as hasher:
            hashing: Future[None] | None = None
            while written <= size:
                chunk = data.read(min(_CHUNK, size + 1 - written))
                if not chunk:
                    break
                if hasher is None:
                    digest.update(chunk)
                else:
                    if hashing is not None:
                        hashing.result()  # chunks go into the hash in order
                    hashing = hasher.submit(digest.update, chunk)
                handle.write(chunk)
                written += len(chunk)
                if hasher is not None and written - started >= _OVERLAP_BYTES:
                    handle.flush()
                    _start_writeback(handle.fileno(), started, written - started)
                    started = written
            if hashing is not None:
                hashing.result()
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
        # A plain string path and no stat first: reads of small metadata files are the hot
        # path of reindex and of every package read (pathlib and a stat doubled their cost).
        path = self._str_path(key)
        with _Unavailable(f"open {key}", key):
            try:
                fd = os.open(path, _READ)
            except NotADirectoryError as exc:
                raise ObjectNotFoundError(key) from exc  # below an object
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise ObjectNotFoundError(key)  # a prefix (a directory)
                left = info.st_size - offset
                if left <= _SMALL_READ:
                    # Metadata files: read now (the open fd pins this version of the
                    # object) with plain os calls, not through Python-level stream layers
                    # (half the CPU of a package read's file reads). Asking one byte more
                    # shows the end; an object that grew since fstat is streamed instead.
                    data = os.pread(fd, max(left, 0) + 1, offset)
                    if len(data) <= left or left < 0:
                        os.close(fd)
                        return io.BytesIO(data if length is None else data[:length])
                if offset:
                    os.lseek(fd, offset, os.SEEK_SET)
            except BaseException:
                os.close(fd)
                raise
            # Unbuffered: the BufferedReader around _Reader is the one buffer.
            handle = open(fd, "rb", buffering=0)  # noqa: SIM115  (owned by the reader)
        return io.BufferedReader(_Reader(handle, key, length), _CHUNK)

    def stat(self, key: str) -> StoredObject:
        """Raises: ObjectNotFoundError, StorageUnavailableError, InvalidKeyError."""
        path = self._str_path(key)
        with _Unavailable(f"stat {key}", key):
            # The attribute first: only files carry it (``put`` sets it on the file it
            # writes), so when it is there no stat has to tell a file from a directory -
            # one system call for the common case (lock checks run this for every key).
            try:
                meta = _read_meta_attr(path)
            except NotADirectoryError:
                raise ObjectNotFoundError(key) from None  # a prefix of it is an object
            except OSError as exc:
                if exc.errno not in _NO_ATTR:
                    raise
                if not os.path.isfile(path):
                    raise ObjectNotFoundError(key) from None
                meta = self._read_legacy_meta(Path(path))
            if meta is None:  # written behind our back: recompute, no lock known
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        digest.update(chunk)
                return StoredObject(key, os.stat(path).st_size, digest.hexdigest())
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
        path = self._str_path(key)
        with _Unavailable(f"exists {key}"):
            return os.path.isfile(path)

    def keys(self, prefix: str) -> Iterator[str]:
        """Keys starting with ``prefix`` in lexicographic order, streamed (memory ~ depth).

        Raises:
            StorageUnavailableError.
        """
        root = self._root_str
        # Start in the deepest directory the prefix names in full (``aips/<id>/`` lists one
        # package, not every entry of ``aips/``): every matching key lies below it. One
        # lstat tells a directory (not a link to one); the root is looked at only when it
        # is missing (deletion lists a handful of prefixes for every package it removes).
        head = prefix.rpartition("/")[0]
        if head and not any(s.startswith(".") or s in ("", "..") for s in head.split("/")):
            start = root + "/" + head
            with _Unavailable(f"list {prefix!r}"):
                try:
                    is_dir = stat.S_ISDIR(os.lstat(start).st_mode)
                except (FileNotFoundError, NotADirectoryError):
                    is_dir = False
                    self._check_root()
            if is_dir:
                yield from self._walk(start, head + "/", prefix)
            return
        with _Unavailable(f"list {prefix!r}"):
            self._check_root()
        yield from self._walk(root, "", prefix)

    def _check_root(self) -> None:
        """Raises: FileNotFoundError (the storage root is missing: no listing is empty)."""
        if not os.path.isdir(self._root_str):
            raise FileNotFoundError(errno.ENOENT, "storage root is missing", self._root_str)

    def children(self, prefix: str) -> Iterator[str]:
        """One level below ``prefix`` (see :class:`archive.storage.base.ListsChildren`): one
        ``scandir``, no walk. A directory is listed as ``name/`` even when it holds no object
        (an emptied one is pruned by ``delete``; callers check what they need).

        Raises:
            StorageUnavailableError.
            ValueError: ``prefix`` does not end with ``/``.
        """
        if not prefix.endswith("/"):
            raise ValueError("a children prefix ends with '/'")
        directory = self._str_path(prefix[:-1])
        with _Unavailable(f"list {prefix!r}"):
            try:
                with os.scandir(directory) as found:
                    entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in found]
            except (FileNotFoundError, NotADirectoryError):
                return
        names = [n + "/" if d else n for n, d in entries if not n.startswith(".")]
        yield from sorted(names)

    def remove_leftovers(self, prefix: str, older_than: datetime) -> int:
        """Remove hidden temp files and staging directories (``.name.<16 hex>.tmp``, see
        :meth:`_temp_path`) directly below ``prefix`` whose newest change is before
        ``older_than``: what a write killed before publishing leaves (see
        :class:`archive.storage.base.SweepsLeftovers`). A staging directory counts as changed
        when anything inside it did, so a write still running is never touched.

        Raises:
            StorageUnavailableError.
            ValueError: ``prefix`` does not end with ``/``, or ``older_than`` is naive.
        """
        if not prefix.endswith("/"):
            raise ValueError("a leftovers prefix ends with '/'")
        _check_aware(older_than)
        limit = older_than.timestamp()
        directory = self._str_path(prefix[:-1])
        removed = 0
        with _Unavailable(f"remove leftovers below {prefix!r}"):
            try:
                with os.scandir(directory) as found:
                    entries = [e for e in found if _LEFTOVER.fullmatch(e.name)]
            except (FileNotFoundError, NotADirectoryError):
                return 0
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if _newest_change(entry.path) >= limit:
                            continue
                        shutil.rmtree(entry.path)
                    elif entry.stat(follow_symlinks=False).st_mtime < limit:
                        os.unlink(entry.path)
                    else:
                        continue
                except FileNotFoundError:
                    continue  # its writer finished (or another sweep) meanwhile
                removed += 1
            if removed:
                _fsync_dir(Path(directory))
        return removed

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

    REMOVE_WORKERS = 16
    """Threads ``delete_many`` removes with (see :mod:`archive.storage._fs_remove`)."""
    CHECK_WORKERS = 2
    """Threads ``delete_many`` checks locks with: the reads hardly wait, more only contend."""
    OFFLOAD_FROM = 256
    """Keys from which ``delete_many`` removes in the removal worker process
    (:mod:`archive.storage._fs_remove_worker`); smaller calls stay in this process."""

    def delete_many(self, keys: Sequence[str]) -> int:
        """Remove many objects; see :meth:`Storage.delete_many`.

        Every lock is checked here before anything is unlinked; then ``REMOVE_WORKERS``
        threads unlink per package subtree, in the removal worker process for
        ``OFFLOAD_FROM`` keys or more, and each surviving directory is synced once before
        this returns (:mod:`archive.storage._fs_remove` says why).

        Raises:
            ObjectLockedError: retention or legal hold (emulated) on any of them.
            StorageUnavailableError: also when the removal worker died; a repeated call
                finishes the removal (with a new worker).
            InvalidKeyError.
        """
        remover = TreeRemover(
            self.root,
            lock_of=self._lock_of,
            read_legacy_meta=self._read_legacy_meta,
            workers=self.REMOVE_WORKERS,
            check_workers=self.CHECK_WORKERS,
            offload=self._removal_worker.remove,
            offload_from=self.OFFLOAD_FROM,
        )
        return remover.remove(keys)

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
        """Stop the fsync threads and the removal worker process; every call opens and
        closes its own files."""
        self._parallel.close()
        self._removal_worker.close()


@dataclass(eq=False)
class _Stage:
    """A hidden copy of a directory being built by :meth:`FsStorage.put_batches`."""

    path: Path
    target: Path
    parents: list[Path]
    """Directories to fsync once it is renamed into place (its parent, created ancestors')."""
    dirs: list[Path]
    """It and its subdirectories: fsync'd with the files, before the rename."""


def _prefixes(key: str) -> Iterator[str]:
    """``a``, ``a/b`` for ``a/b/c``."""
    parts = key.split("/")
    for n in range(1, len(parts)):
        yield "/".join(parts[:n])


def _create(item: _Item) -> None:
    """Write ``item`` to ``item.tmp`` (a new file) with its metadata attribute; no fsync."""
    assert item.tmp is not None
    fd = os.open(item.tmp, _CREATE, 0o644)
    try:
        _write_all(fd, item.data)
        os.setxattr(fd, _XATTR, item.meta)
    finally:
        os.close(fd)


@dataclass(eq=False)
class _Item:
    """One object of :meth:`FsStorage.put_batches` on its way to its path."""

    key: str
    data: bytes
    sha256: str
    path: Path
    meta: bytes
    tmp: Path | None = None
    """Its temp (or staged) file while one exists (None: nothing to write, or renamed)."""
    conflict: ArchiveError | None = None


def _newest_change(tree: str) -> float:
    """The newest modification time of a directory and everything in it."""
    newest = os.lstat(tree).st_mtime
    for folder, dirs, files in os.walk(tree):
        for name in dirs + files:
            newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


@contextlib.contextmanager
def _hasher(size: int) -> Iterator[ThreadPoolExecutor | None]:
    """A thread to hash on while writing an object of ``size`` bytes; None below
    ``_OVERLAP_BYTES``, where starting one costs more than it saves."""
    if size < _OVERLAP_BYTES:
        yield None
        return
    with ThreadPoolExecutor(1, thread_name_prefix="fs-hash") as pool:
        yield pool


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
        try:
            os.removexattr(root, _PROBE)
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # ENODATA: a process starting at once removed it
                raise
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise StorageUnavailableError(
                "fs", f"{root}: the filesystem keeps no user extended attributes"
            ) from exc
        raise
