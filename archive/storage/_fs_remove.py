"""Removing many objects of the fs backend at once (private): ``FsStorage.delete_many``.

Every lock is checked before anything is unlinked, in this process (the storage's clock
decides). Files are unlinked and emptied directories removed without syncing each; then
every directory that survives is synced once. A removed directory needs no sync of its own:
the sync of the surviving parent makes its removal, and so that of everything that was in
it, durable.

The keys are split by their subtree below the top level (``aips/<id>``, ...), and several
threads unlink and remove the subtrees at once, each its own: on a disk that discards freed
blocks synchronously (ext4 ``-o discard``) every unlink and rmdir waits for the device, the
kernel releases the GIL meanwhile, and the waits of different directories overlap
(``bench/retention.py`` measures ``rm -rf`` against such threads on the same packages:
several times faster).

A big batch (``offload_from`` paths or more) is removed by a removal worker process
(:mod:`archive.storage._fs_remove_worker`) instead: it gets the plain paths that passed the
checks, removes them with :func:`remove_checked` and answers after its syncs. In one process
every system call of the removing threads hands the GIL over between the cores, hundreds of
switches per package, which left the caller's own threads (the checks, the next batch of a
disposal) waiting; the worker's threads contend only with each other. Small batches stay in
this process: for them the round trip would cost more than it saves.

Plain string paths and one ``getxattr`` per key (it also tells whether the object exists):
this runs for every file of every disposed package. A legacy sidecar is removed with its
object when the object's metadata came from it; one left behind otherwise (a crash between
two writes) is found when its directory will not empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from archive.storage._fsio import NO_ATTR as _NO_ATTR
from archive.storage._fsio import Unavailable as _Unavailable
from archive.storage._fsio import fsync_dir as _fsync_dir
from archive.storage._fsio import read_meta_attr as _read_meta_attr
from archive.storage._parallel import Parallel
from archive.storage.base import check_key

__all__ = ["Checked", "TreeRemover", "remove_checked"]

Meta = dict[str, Any]
Checked = list[list[tuple[str, bool]]]
"""Per subtree, ``(path, metadata from a legacy sidecar)`` of each object to remove."""
Offload = Callable[[str, Checked, int], int]
"""``(root, checked, threads) -> removed``: :func:`remove_checked` somewhere else."""


class TreeRemover:
    """Removes objects below one fs storage root; the object format (metadata attribute,
    legacy sidecars, emulated locks) comes from the storage through its callables."""

    def __init__(
        self,
        root: Path,
        *,
        lock_of: Callable[[str, Meta | None], None],
        read_legacy_meta: Callable[[Path], Meta | None],
        workers: int,
        check_workers: int,
        offload: Offload | None = None,
        offload_from: int = 0,
    ) -> None:
        self._root = str(root)
        self._lock_of = lock_of
        self._read_legacy_meta = read_legacy_meta
        self._workers = workers
        self._check_workers = check_workers
        self._offload = offload
        self._offload_from = offload_from

    def remove(self, keys: Sequence[str]) -> int:
        """Remove ``keys`` (see the module docstring); return how many objects were removed.

        Raises:
            ObjectLockedError: retention or legal hold (emulated) on any of them; nothing is
                removed then.
            StorageUnavailableError, InvalidKeyError.
        """
        root = self._root
        groups: dict[str, list[tuple[str, str]]] = {}  # subtree -> [(key, path)]
        for key in keys:
            valid = check_key(key)
            head, _, rest = valid.partition("/")
            subtree = head + "/" + rest.partition("/")[0] if "/" in rest else head
            groups.setdefault(subtree, []).append((key, root + "/" + valid))
        subtrees = list(groups.values())
        if not subtrees:
            return 0
        # The checks read attributes from the page cache and hardly wait: a few threads
        # suffice, and each more only hands the GIL around.
        workers = min(self._check_workers, len(subtrees))
        parts = [subtrees[i::workers] for i in range(workers)]

        def check(part: list[list[tuple[str, str]]]) -> Checked:
            return [self._present_in(group) for group in part]

        pool = Parallel(workers, "fs-check")
        try:
            with _Unavailable(f"delete {len(keys)} objects"):
                checked = [g for part in pool.run(check, parts) for g in part]  # every lock first
        finally:
            pool.close()
        if self._offload is not None and len(keys) >= self._offload_from:
            return self._offload(root, checked, self._workers)
        return remove_checked(root, checked, self._workers)

    def _present_in(self, group: list[tuple[str, str]]) -> list[tuple[str, bool]]:
        """``(path, metadata from a legacy sidecar)`` of the group's objects that exist.

        Raises:
            ObjectLockedError: one of them is under retention or legal hold.
        """
        present: list[tuple[str, bool]] = []
        for key, path in group:
            found = self._present_meta(path)
            if found is None:
                continue
            meta, legacy = found
            self._lock_of(key, meta)
            present.append((path, legacy))
        return present

    def _present_meta(self, path: str) -> tuple[dict[str, Any] | None, bool] | None:
        """``(metadata, from a legacy sidecar)`` of the object at ``path``; None if absent.

        Only files carry the attribute (``put`` sets it on the file it writes), so a
        successful read needs no second system call to tell a file from a directory.
        """
        try:
            meta = _read_meta_attr(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno not in _NO_ATTR:
                raise
            if not os.path.isfile(path):
                return None
            return self._read_legacy_meta(Path(path)), True
        return meta, False


def remove_checked(root: str, checked: Checked, workers: int) -> int:
    """Unlink checked objects below ``root`` (no lock is looked at), remove the directories
    that emptied, sync every surviving directory once; return how many objects went.

    Raises:
        StorageUnavailableError.
    """
    workers = max(1, min(workers, len(checked)))
    parts = [checked[i::workers] for i in range(workers)]

    def remove(part: Checked) -> tuple[int, list[str]]:
        removed, survivors = 0, []
        for group in part:
            count, kept = _remove_group(root, group)
            removed += count
            survivors += kept
        return removed, survivors

    pool = Parallel(workers, "fs-remove")
    try:
        with _Unavailable(f"delete {sum(map(len, checked))} objects"):
            done = pool.run(remove, parts)
            survivors = dict.fromkeys(d for _, kept in done for d in kept)
            pool.run(_fsync_if_there, list(survivors))
    finally:
        pool.close()
    return sum(count for count, _ in done)


def _remove_group(root: str, present: list[tuple[str, bool]]) -> tuple[int, list[str]]:
    """Unlink the objects of one subtree and remove the directories that emptied;
    ``(objects removed, directories to sync)``."""
    removed = 0
    emptied: dict[str, list[str]] = {}  # directory -> names unlinked in it
    for path, legacy in present:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # removed concurrently: gone all the same
        except IsADirectoryError:
            continue  # a directory is no object
        removed += 1
        directory, _, name = path.rpartition("/")
        if legacy:
            _drop_sidecar(directory, name)
        emptied.setdefault(directory, []).append(name)
    return removed, _remove_emptied(root, emptied)


def _drop_sidecar(directory: str, name: str) -> bool:
    """Unlink the legacy metadata sidecar of object ``name`` (``FsStorage``'s
    ``.<name>.meta``); False if there was none."""
    try:
        os.unlink(f"{directory}/.{name}.meta")
    except FileNotFoundError:
        return False
    return True


def _remove_emptied(root: str, emptied: dict[str, list[str]]) -> list[str]:
    """Remove every emptied directory and its ancestors below the top level, deepest
    first (each tried once: one that is not empty survives, and so do its ancestors);
    return the surviving directories, which the caller syncs once each."""
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
        if not _rmdir(directory, emptied.get(directory, ())):
            survivors[directory] = None
            parent = os.path.dirname(directory)
            while parent != root and parent.startswith(root):
                kept.add(parent)
                parent = os.path.dirname(parent)
            continue
        parent = os.path.dirname(directory)
        if os.path.dirname(parent) == root:
            survivors[parent] = None  # a top-level directory
    return list(survivors)


def _rmdir(directory: str, unlinked: Sequence[str]) -> bool:
    """Remove ``directory`` if it is empty (True also when it is gone already). Legacy
    sidecars of the objects just unlinked in it do not keep it: they go first."""
    for attempt in (0, 1):
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            return True
        except OSError:
            dropped = [_drop_sidecar(directory, n) for n in unlinked]
            if attempt or not any(dropped):
                return False
            continue
        return True
    return False


def _fsync_if_there(directory: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        _fsync_dir(Path(directory))
