"""``AipStore``: the commit protocol of AIPs over any :class:`Storage`, and reading them back.

Keys are exactly ``aips/<aip_id>/<path inside the package>``.

Commit protocol: every file except the root METS is written first, then the root METS with
``if_absent=True`` and ``retain_until``. That last write is the commit marker: a package
without it is *incomplete* and invisible to every reader here; a second commit of the same id
fails with :class:`ObjectExistsError` and overwrites nothing. Intent, files and marker go to
:meth:`Storage.put_batches` as ordered batches in one call (batched durability, no
conditional-create round trip for the files; the backend overlaps what the order allows): an
aip id has one writer (ids are fresh UUIDs, and an ingest or version claim precedes each
commit).

Versions: a package never changes; :meth:`AipStore.commit_version` stores a new AIP whose
root METS points to its predecessor and :meth:`AipStore.resolve` gives the newest version of
a document by default, any older one on request (see the "versions" section below).

With a retention, files are written *under* it (no ``set_retention`` per file afterwards:
that doubled the requests on S3). Locked objects cannot be deleted (on S3 in COMPLIANCE mode
not even by an administrator), so an interrupted commit could not be cleaned up; instead it is
*finished*: before the first locked file, a commit intent (:mod:`archive.commit_intent`, no
retention) stores the root METS and those files' bytes, and :meth:`AipStore.complete` (run by
reconcile) writes whatever is missing and the root METS. Files larger than
``INTENT_MAX_FILE`` are not copied into the intent: they are written without retention
before it and sealed after the marker (``seal`` is idempotent; reconcile re-runs it). Without
a retention nothing is locked and an interrupted commit is discarded as before.

Invariants:
- committed bytes are never overwritten or deleted by this class (disposal belongs to
  retention and goes through the storage lock rules);
- what is read is checked against the root METS: metadata before it is parsed
  (:class:`IntegrityError` on mismatch), content by ``verify`` and ``read_text``;
- ``discard_incomplete`` refuses committed packages, and packages with a commit intent whose
  retention is in force (``complete`` them). It must only be called for packages whose
  writer is known to have stopped (the reconcile job's lease and an age threshold): deleting
  under a commit that is still running would leave that commit without its files.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import BinaryIO, cast

from archive import layout
from archive._verified import VerifiedStream
from archive.commit_intent import PREFIX as INTENT_PREFIX
from archive.commit_intent import CommitIntent, decode_intent, encode_intent, intent_key
from archive.descriptive import read_descriptive
from archive.errors import (
    IntegrityError,
    InvalidKeyError,
    InvalidPackageError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
    PackageCommittedError,
    PackageNotFoundError,
)
from archive.fixity import FileCheck, FixityReport, FixityStatus, hash_stream
from archive.index_file import IndexFile, read_index_file
from archive.mets import RootMets
from archive.model import AipManifest, BuiltPackage, DocumentMetadata, FileEntry, IndexRecord
from archive.reader import assemble_manifest, check_bytes, read_manifest, read_root
from archive.storage.base import (
    ClaimsBeforeStoring,
    ListsChildren,
    NewBatch,
    NewObject,
    Storage,
    SweepsLeftovers,
    check_key,
)
from archive.xml import DEFAULT_MAX_BYTES

__all__ = ["AipStore"]


INTENT_MAX_FILE = 8 * 1024 * 1024
"""Files up to this size are copied into the commit intent and written under retention; larger
ones are written before the intent without retention and sealed after the commit marker (for
them one more request is cheaper than writing their bytes twice)."""

VERSION_CLAIM_GRACE = timedelta(minutes=10)
"""How long a claimed but uncommitted version blocks the next one (its writer may be alive)."""


def _parse_version_claim(raw: bytes) -> tuple[str, datetime]:
    """A version claim is ``<aip id>\\n<claimed at, ISO 8601>``."""
    aip_id, _, claimed_at = raw.decode().partition("\n")
    try:
        return aip_id, datetime.fromisoformat(claimed_at)
    except ValueError:
        return aip_id, datetime.min.replace(tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


_READ_BLOCK = 64 * 1024


def _safe_segment(name: str) -> bool:
    try:
        check_key(name)
    except InvalidKeyError:
        return False
    return "/" not in name


def _read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes of ``stream``, in blocks: one ``read(limit)`` would allocate
    ``limit`` bytes up front (16 MiB for every small metadata file) - except from an
    in-memory stream (fs hands small objects over as one), which allocates what it holds."""
    if isinstance(stream, io.BytesIO):
        return stream.read(limit)
    blocks: list[bytes] = []
    size = 0
    while size < limit and (block := stream.read(min(limit - size, _READ_BLOCK))):
        blocks.append(block)
        size += len(block)
    return b"".join(blocks)


class AipStore:
    """Commit, list, read and verify AIPs kept in a :class:`Storage`."""

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_metadata_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._max_metadata = max_metadata_bytes

    # -- writing ------------------------------------------------------------------------------

    def commit(self, pkg: BuiltPackage, *, retain_until: datetime | None = None) -> AipManifest:
        """Store every file of ``pkg``, then its root METS last (the commit marker).

        Raises:
            ObjectExistsError: the package is already committed, or an object of it exists
                with other bytes (an incomplete package: ``discard_incomplete`` it first).
            InvalidPackageError: ``pkg`` is inconsistent (its root METS does not list exactly
                its files with their hashes).
            IntegrityError, StorageUnavailableError, ObjectLockedError: from the storage.
        """
        manifest = self._check_package(pkg)
        root_key = layout.aip_key(pkg.aip_id, layout.ROOT_METS)
        # Fail before writing anything when the package exists. A backend that claims the
        # marker's key before it stores anything (S3: at once with the intent) saves the
        # round trip of this check.
        claims = isinstance(self._storage, ClaimsBeforeStoring)
        if not claims and self._storage.exists(root_key):
            raise ObjectExistsError(root_key)
        sha256 = {entry.path: entry.sha256 for entry in manifest.files}
        root_sha256 = hashlib.sha256(pkg.root_mets).hexdigest()
        marker = NewBatch([NewObject(root_key, pkg.root_mets, root_sha256)], retain_until, True)
        if retain_until is None:  # nothing gets locked: leftovers stay deletable
            self._storage.put_batches([self._batch(pkg.aip_id, pkg.files, sha256, None), marker])
            return manifest
        small = {p: d for p, d in pkg.files.items() if len(d) <= INTENT_MAX_FILE}
        large = [p for p in pkg.files if p not in small]
        for path in large:
            self._put_once(layout.aip_key(pkg.aip_id, path), pkg.files[path])
        intent = CommitIntent(pkg.aip_id, self._clock(), retain_until, pkg.root_mets, small)
        raw = encode_intent(intent, {**sha256, layout.ROOT_METS: root_sha256})
        key = intent_key(pkg.aip_id)
        # One call: the backend overlaps what the order allows (fs: one round of file fsyncs
        # for all three batches, and no intent at all when the package's directory appears
        # with one rename). Without large files nothing follows the marker, so the intent
        # goes with it; a crash that brings it back is cleaned up by reconcile.
        batches = [
            NewBatch([NewObject(key, raw, hashlib.sha256(raw).hexdigest())], redo=True),
            self._batch(pkg.aip_id, small, sha256, retain_until),
            marker,
        ]
        then_delete = [] if large else [key]
        try:
            self._storage.put_batches(batches, then_delete=then_delete)
        except ObjectExistsError as exc:  # an interrupted attempt's intent: fine if the same
            if exc.key != key or self._read_intent(pkg.aip_id).root_mets != pkg.root_mets:
                raise
            self._storage.put_batches(batches[1:], then_delete=then_delete)
        for path in large:
            self._storage.set_retention(layout.aip_key(pkg.aip_id, path), retain_until)
        if large:
            self._storage.delete(key)
        return manifest

    def _put_new(
        self,
        aip_id: str,
        files: Mapping[str, bytes],
        sha256: Mapping[str, str],
        retain_until: datetime | None,
    ) -> None:
        objects = [NewObject(layout.aip_key(aip_id, p), d, sha256[p]) for p, d in files.items()]
        self._storage.put_new(objects, retain_until=retain_until)

    @staticmethod
    def _batch(
        aip_id: str,
        files: Mapping[str, bytes],
        sha256: Mapping[str, str],
        retain_until: datetime | None,
    ) -> NewBatch:
        objects = [NewObject(layout.aip_key(aip_id, p), d, sha256[p]) for p, d in files.items()]
        return NewBatch(objects, retain_until)

    def _read_intent(self, aip_id: str) -> CommitIntent:
        """Raises: ObjectNotFoundError, InvalidPackageError, StorageUnavailableError."""
        with self._storage.open(intent_key(aip_id)) as stream:
            return decode_intent(aip_id, stream.read())

    def complete(self, aip_id: str, *, written_before: datetime | None = None) -> bool:
        """Finish an interrupted commit from its intent; True when this call committed it.

        Writes the files the intent holds that are missing (under the intent's retention),
        checks that every other listed file is present with its SHA-256, writes the root METS
        (the commit marker), seals and deletes the intent. False, and nothing written, when
        there is no intent, when it is not older than ``written_before`` (its writer may be
        alive), when its retention has ended (``discard_incomplete`` it), or when the package
        is already committed (its leftover intent is deleted). Idempotent.

        Raises:
            InvalidPackageError: the intent is damaged, or a listed file is missing without a
                copy in the intent or holds other bytes: the package cannot be finished.
            StorageUnavailableError.
        """
        try:
            intent = self._read_intent(aip_id)
        except ObjectNotFoundError:
            return False
        if self.is_committed(aip_id):
            self._storage.delete(intent_key(aip_id))
            return False
        if written_before is not None and intent.written_at >= written_before:
            return False
        if intent.retain_until <= self._clock():
            # Nothing of it is locked any more, so discard it instead; and a package disposed
            # of after its retention must never come back from a forgotten intent.
            return False
        root = read_root(aip_id, intent.root_mets)
        missing: dict[str, bytes] = {}
        for entry in root.files:
            try:
                stored = self._storage.stat(layout.aip_key(aip_id, entry.path))
            except ObjectNotFoundError:
                if entry.path not in intent.files:
                    raise InvalidPackageError(aip_id, f"{entry.path} is missing") from None
                missing[entry.path] = check_bytes(aip_id, entry, intent.files[entry.path])
                continue
            if stored.sha256 != entry.sha256 or stored.size != entry.size:
                raise InvalidPackageError(aip_id, f"{entry.path} holds other bytes")
        sha256 = {entry.path: entry.sha256 for entry in root.files}
        self._put_new(aip_id, missing, sha256, intent.retain_until)
        root_key = layout.aip_key(aip_id, layout.ROOT_METS)
        try:
            self._put(root_key, intent.root_mets, intent.retain_until, if_absent=True)
            finished = True
        except ObjectExistsError:  # its writer was alive after all and committed it
            finished = False
        self.seal(aip_id)
        self._storage.delete(intent_key(aip_id))
        return finished

    def commit_intents(self) -> Iterator[str]:
        """Ids with a commit intent: interrupted commits (or ones still running).

        Raises:
            StorageUnavailableError.
        """
        for key in self._storage.keys(INTENT_PREFIX):
            yield key.removeprefix(INTENT_PREFIX)

    def seal(self, aip_id: str) -> int:
        """Give every file of a committed package the retention of its root METS.

        Idempotent; returns how many objects it had to update (0 when already sealed or when
        the package has no retention).

        Raises:
            PackageNotFoundError: the package is not committed.
            ObjectNotFoundError: a listed file is missing (``verify`` reports it in detail).
            StorageUnavailableError.
        """
        root_key = layout.aip_key(aip_id, layout.ROOT_METS)
        try:
            until = self._storage.stat(root_key).retain_until
        except ObjectNotFoundError as exc:
            raise PackageNotFoundError(aip_id) from exc
        if until is None:
            return 0
        _, root = self._root(aip_id)
        updated = 0
        for entry in root.files:
            key = layout.aip_key(aip_id, entry.path)
            current = self._storage.stat(key).retain_until
            if current is None or current < until:
                self._storage.set_retention(key, until)
                updated += 1
        return updated

    def set_legal_hold(self, aip_id: str, hold: bool) -> int:
        """Place or lift a legal hold on every object of a committed package.

        Returns how many objects were changed. While held, nothing of it can be deleted, even
        after its retention ends.

        Raises:
            PackageNotFoundError, StorageUnavailableError.
        """
        if not self.is_committed(aip_id):
            raise PackageNotFoundError(aip_id)
        keys = list(self._storage.keys(layout.aip_prefix(aip_id)))
        for key in keys:
            self._storage.set_legal_hold(key, hold)
        return len(keys)

    def _check_package(self, pkg: BuiltPackage) -> AipManifest:
        try:
            descriptive = pkg.files[layout.DESCRIPTIVE_PATH]
            premis = pkg.files[layout.PREMIS_PATH]
        except KeyError as exc:
            raise InvalidPackageError(pkg.aip_id, f"{exc.args[0]} is missing") from exc
        manifest = read_manifest(pkg.aip_id, pkg.root_mets, descriptive=descriptive, premis=premis)
        listed = {f.path: f for f in manifest.files}
        if set(listed) != set(pkg.files):
            diff = sorted(set(listed) ^ set(pkg.files))
            raise InvalidPackageError(pkg.aip_id, f"root METS and files differ: {diff}")
        for path, data in pkg.files.items():
            try:
                check_bytes(pkg.aip_id, listed[path], data)
            except IntegrityError as exc:
                raise InvalidPackageError(pkg.aip_id, str(exc)) from exc
        return manifest

    def _put(
        self, key: str, data: bytes, retain_until: datetime | None, *, if_absent: bool
    ) -> None:
        self._storage.put(
            key,
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            if_absent=if_absent,
            retain_until=retain_until,
        )

    def _put_once(self, key: str, data: bytes) -> None:
        try:
            self._put(key, data, None, if_absent=True)
        except ObjectExistsError:
            existing = self._storage.stat(key)
            if existing.sha256 != hashlib.sha256(data).hexdigest() or existing.size != len(data):
                raise

    def discard_incomplete(self, aip_id: str) -> int:
        """Delete every object of an uncommitted package; return how many were deleted.

        Its commit intent goes last, so a failure part-way leaves it finishable.

        Raises:
            PackageCommittedError: the package is committed.
            ObjectLockedError: an object is under retention or hold (it stays until then), or
                the package has a commit intent whose retention is in force: its files may be
                locked, so :meth:`complete` it instead (nothing is deleted).
            StorageUnavailableError.
        """
        if self.is_committed(aip_id):
            raise PackageCommittedError(aip_id, "discard it as incomplete")
        try:
            intent: CommitIntent | None = self._read_intent(aip_id)
        except ObjectNotFoundError:
            intent = None
        if intent is not None and intent.retain_until > self._clock():
            raise ObjectLockedError(layout.aip_prefix(aip_id), intent.retain_until)
        keys = list(self._storage.keys(layout.aip_prefix(aip_id)))
        if self.is_committed(aip_id):  # a commit finished while we listed
            raise PackageCommittedError(aip_id, "discard it as incomplete")
        for key in keys:
            self._storage.delete(key)
        if intent is not None:
            self._storage.delete(intent_key(aip_id))
        return len(keys)

    # -- versions (E-ARK AIP versioning) -------------------------------------------------------
    #
    # A document's first package keeps its id for life (receipts and the index name it). A new
    # version (a renewed signature, a new event) is a new AIP whose root METS points to its
    # predecessor; ``versions/<document id>/<n>`` (n = 2, 3, ...; zero-padded) names the AIP of
    # version n. Version n is claimed with a conditional create BEFORE its package is written,
    # so two writers of version n cannot both succeed; a claim whose package never committed
    # (a crash) is skipped by readers and its number is not reused.

    def document_of(self, aip_id: str) -> str:
        """The id of the document's first package, following the predecessor pointers.

        Raises:
            PackageNotFoundError, InvalidPackageError, StorageUnavailableError.
        """
        current = aip_id
        for _ in range(10_000):
            previous = self._root(current)[1].previous_aip_id
            if previous is None:
                return current
            current = previous
        raise InvalidPackageError(aip_id, "the version chain does not end")

    def _version_claims(self, document_id: str) -> list[tuple[int, str]]:
        return [(n, aip_id) for n, aip_id, _ in self._version_claims_dated(document_id)]

    def _version_claims_dated(self, document_id: str) -> list[tuple[int, str, datetime]]:
        claims = []
        for key in self._storage.keys(f"versions/{document_id}/"):
            number = key.rsplit("/", 1)[1]
            if number.isdigit():
                with self._storage.open(key) as stream:
                    aip_id, claimed_at = _parse_version_claim(stream.read(200))
                claims.append((int(number), aip_id, claimed_at))
        return sorted(claims)

    def versions(self, document_id: str) -> list[str]:
        """AIP ids of every committed version, oldest (the document id itself) first.

        Raises:
            PackageNotFoundError: the document is not committed.
            StorageUnavailableError.
        """
        if not self.is_committed(document_id):
            raise PackageNotFoundError(document_id)
        found = [document_id]
        found.extend(a for _, a in self._version_claims(document_id) if self.is_committed(a))
        return found

    def resolve(self, document_id: str, version: int | None = None) -> str:
        """The AIP id of the newest version (default) or of version ``version`` (1 = first).

        Raises:
            PackageNotFoundError: no such document or version.
            StorageUnavailableError.
        """
        ids = self.versions(document_id)
        if version is None:
            return ids[-1]
        if not 1 <= version <= len(ids):
            raise PackageNotFoundError(f"{document_id} version {version}")
        return ids[version - 1]

    def commit_version(
        self, pkg: BuiltPackage, *, retain_until: datetime | None = None
    ) -> tuple[AipManifest, int]:
        """Store ``pkg`` as the next version of the package its root METS points to.

        Returns the manifest and the version number (2 for the first new version).

        Raises:
            InvalidPackageError: ``pkg``'s root METS names no predecessor.
            PackageNotFoundError: the predecessor is not committed.
            ObjectExistsError: the predecessor is not the newest version, or another writer
                claimed this version number first: rebuild against :meth:`resolve` and retry.
            As :meth:`commit` otherwise.
        """
        previous = read_root(pkg.aip_id, pkg.root_mets).previous_aip_id
        if previous is None:
            raise InvalidPackageError(pkg.aip_id, "a new version must name its predecessor")
        document_id = self.document_of(previous)
        claims = self._version_claims_dated(document_id)
        if claims:
            # The newest claim may belong to a writer still storing its package: building on
            # the version before it would fork the chain. Only a claim older than the grace
            # period, whose writer must have died, is skipped.
            top, top_aip, claimed_at = claims[-1]
            fresh = self._clock() - claimed_at < VERSION_CLAIM_GRACE
            if fresh and not self.is_committed(top_aip):
                raise ObjectExistsError(f"versions/{document_id}/{top:06d}: being written")
        committed = [document_id] + [a for _, a, _ in claims if self.is_committed(a)]
        if committed[-1] != previous:
            raise ObjectExistsError(f"versions/{document_id}: {previous} is not the newest")
        number = (claims[-1][0] if claims else 1) + 1
        claim = f"{pkg.aip_id}\n{self._clock().isoformat()}".encode()
        self._storage.put(
            f"versions/{document_id}/{number:06d}",
            io.BytesIO(claim),
            size=len(claim),
            sha256=hashlib.sha256(claim).hexdigest(),
            if_absent=True,
            retain_until=retain_until,
        )
        return self.commit(pkg, retain_until=retain_until), number

    # -- projection (reindex, reconcile) -------------------------------------------------------
    #
    # Document-level reads for the search index: one entry per document, keyed by its first
    # package's id, carrying the newest version's content. ``index_record`` parses the newest
    # root METS once and skips PREMIS; everything it returns is hash-checked as elsewhere.

    def document_ids(self) -> Iterator[str]:
        """Ids of committed documents (first versions, not successors), in key order.

        A successor is an AIP named by a version claim (``versions/<document id>/<n>``);
        :meth:`commit_version` claims before it writes, so every committed successor has one.

        Raises:
            StorageUnavailableError.
        """
        successors = self._successor_ids()
        for aip_id in self.aip_ids():
            if aip_id not in successors:
                yield aip_id

    def _successor_ids(self) -> set[str]:
        found = set()
        for key in self._storage.keys("versions/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2].isdigit():
                with self._storage.open(key) as stream:
                    found.add(_parse_version_claim(stream.read(200))[0])
        return found

    def index_record(self, document_id: str) -> IndexRecord:
        """The newest version's descriptive metadata and text, with the document's creation
        time. From the package's index file when its root METS declares it (no XML parsed:
        :mod:`archive.index_file`), else from the root METS (read and parsed once) and
        ``dc.xml``; PREMIS is not read.

        Raises:
            PackageNotFoundError: no committed document has this id.
            IntegrityError: the descriptive metadata or the text differs from what the root
                METS lists.
            InvalidPackageError, HostileXmlError, StorageUnavailableError.
        """
        aip_id = document_id
        # Version numbers start at 2 and are claimed in order: without claim 2 there are no
        # versions, and one stat spares listing ``versions/`` for every unversioned document.
        if self._storage.exists(f"versions/{document_id}/{2:06d}"):
            aip_id = self.resolve(document_id)
        indexed = self._index_file(aip_id)
        if indexed is not None:
            return IndexRecord(
                document_id=document_id,
                aip_id=aip_id,
                metadata=indexed.metadata,
                created_at=(
                    indexed.created_at
                    if aip_id == document_id
                    else self._root(document_id)[1].created_at
                ),
                text=self._text(aip_id, indexed.text),
            )
        _, root = self._root(aip_id)
        created_at = root.created_at
        if aip_id != document_id:
            created_at = self._root(document_id)[1].created_at
        descriptive = self._read_listed(aip_id, root.descriptive)
        path = root.representations[layout.REP_TEXT][0]
        entry = next(f for f in root.files if f.path == path)
        return IndexRecord(
            document_id=document_id,
            aip_id=aip_id,
            metadata=read_descriptive(descriptive, aip_id=aip_id),
            created_at=created_at,
            text=self._text(aip_id, entry),
        )

    def _index_file(self, aip_id: str) -> IndexFile | None:
        """The package's index file if its root METS declares it as it is, else None.

        Raises:
            PackageNotFoundError: the package has an index file but no root METS (not
                committed: invisible, as everywhere).
            StorageUnavailableError.
        """
        try:
            data = self._read_small(layout.aip_key(aip_id, layout.INDEX_FILE_PATH))
        except (ObjectNotFoundError, InvalidPackageError):
            return None  # archived before index files existed (or oversized): the full path
        try:
            root_mets = self._read_small(layout.aip_key(aip_id, layout.ROOT_METS))
        except ObjectNotFoundError as exc:
            raise PackageNotFoundError(aip_id) from exc
        return read_index_file(aip_id, data, root_mets)

    # -- listing ------------------------------------------------------------------------------

    def is_committed(self, aip_id: str) -> bool:
        """Raises: StorageUnavailableError, InvalidKeyError."""
        return self._storage.exists(layout.aip_key(aip_id, layout.ROOT_METS))

    def aip_ids(self) -> Iterator[str]:
        """Ids of committed packages, in key order.

        Raises:
            StorageUnavailableError.
        """
        storage = self._storage
        if isinstance(storage, ListsChildren):  # one level, then one stat per package
            for name in storage.children("aips/"):
                aip_id = name.removesuffix("/")
                if aip_id != name and _safe_segment(aip_id) and self.is_committed(aip_id):
                    yield aip_id
            return
        for key in storage.keys("aips/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == layout.ROOT_METS:
                yield parts[1]

    def remove_write_leftovers(self, older_than: datetime) -> int:
        """Remove the hidden bytes of package commits killed before they published (fs:
        the staging copy of a package directory), last changed before ``older_than``;
        return how many. Nothing on a store without such leftovers (S3: its lifecycle rule
        aborts incomplete multipart uploads).

        Raises:
            StorageUnavailableError.
        """
        if isinstance(self._storage, SweepsLeftovers):
            return self._storage.remove_leftovers("aips/", older_than)
        return 0

    def incomplete(self) -> Iterator[str]:
        """Ids that have objects but no root METS (interrupted commits).

        Raises:
            StorageUnavailableError.
        """
        current: str | None = None
        committed = False
        for key in self._storage.keys("aips/"):
            parts = key.split("/")
            if len(parts) < 3:
                continue
            if parts[1] != current:
                if current is not None and not committed:
                    yield current
                current, committed = parts[1], False
            committed = committed or (len(parts) == 3 and parts[2] == layout.ROOT_METS)
        if current is not None and not committed:
            yield current

    # -- reading ------------------------------------------------------------------------------

    def _read_small(self, key: str) -> bytes:
        with self._storage.open(key) as stream:
            data = _read_at_most(stream, self._max_metadata + 1)
        if len(data) > self._max_metadata:
            raise InvalidPackageError(key, f"metadata larger than {self._max_metadata} bytes")
        return data

    def _root(self, aip_id: str) -> tuple[bytes, RootMets]:
        try:
            data = self._read_small(layout.aip_key(aip_id, layout.ROOT_METS))
        except ObjectNotFoundError as exc:
            raise PackageNotFoundError(aip_id) from exc
        return data, read_root(aip_id, data)

    def _read_listed(self, aip_id: str, entry: FileEntry, *, check: bool = True) -> bytes:
        """A listed metadata file, checked against ``entry`` (``check=False``: by the caller,
        e.g. :func:`assemble_manifest`, which checks what it is given)."""
        try:
            data = self._read_small(layout.aip_key(aip_id, entry.path))
        except ObjectNotFoundError as exc:
            raise InvalidPackageError(aip_id, f"{entry.path} is listed but missing") from exc
        return check_bytes(aip_id, entry, data) if check else data

    def manifest(self, aip_id: str) -> AipManifest:
        """The committed package's manifest (root METS + descriptive + PREMIS). The root METS
        and the descriptive metadata are read and checked now; the PREMIS file is read,
        checked and parsed on first use of the manifest's PREMIS part (see
        :class:`AipManifest`: a download never needs it; ``verify`` checks every file).

        Raises:
            PackageNotFoundError: no committed package has this id.
            InvalidPackageError, HostileXmlError: the stored metadata is not a Kluis AIP.
            IntegrityError: the descriptive metadata differs from what the root METS lists.
            StorageUnavailableError.
        """
        data, root = self._root(aip_id)
        return assemble_manifest(  # the root METS is parsed once per read; it checks both
            aip_id,
            root,
            root_mets_sha256=hashlib.sha256(data).hexdigest(),
            descriptive=self._read_listed(aip_id, root.descriptive, check=False),
            premis=partial(self._read_listed, aip_id, root.premis, check=False),
        )

    def open_file(
        self, aip_id: str, path: str, *, manifest: AipManifest | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """Stream one file of a committed package (``METS.xml`` or any file it lists).

        A listed file is checked while it is read: the read that reaches its end (or goes
        past its listed size) raises :class:`IntegrityError` when size or SHA-256 differ
        from the root METS. A stream left before its end (a byte range) is not checked. A
        file the storage hands over whole, in memory (fs: up to 64 KiB), is checked at once:
        then this call raises the :class:`IntegrityError` and no byte is handed out.

        ``manifest``: this package's manifest, from :meth:`manifest` just before (a download
        reads both): the file is found in it, so the root METS is not read and parsed again.

        Raises:
            PackageNotFoundError: no committed package has this id (without ``manifest``).
            ObjectNotFoundError: the package has no such file (or it went missing).
            IntegrityError: from a read (or from this call), as above.
            StorageUnavailableError.
            ValueError: ``manifest`` is another package's.
        """
        if manifest is None:
            files = self._root(aip_id)[1].files
        elif manifest.aip_id != aip_id:
            raise ValueError(f"the manifest of {manifest.aip_id} is not that of {aip_id}")
        else:
            files = manifest.files
        key = layout.aip_key(aip_id, path)
        if path == layout.ROOT_METS:
            return self._storage.open(key)
        entry = next((f for f in files if f.path == path), None)
        if entry is None:
            raise ObjectNotFoundError(key)
        return self._open_verified(key, entry)

    def open_pdf(
        self, aip_id: str, *, manifest: AipManifest | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """Stream the signed PDF, checked while read (see :meth:`open_file`).

        Raises:
            As :meth:`open_file`.
        """
        if manifest is not None:
            return self.open_file(aip_id, manifest.pdf_path, manifest=manifest)
        _, root = self._root(aip_id)
        path = root.representations[layout.REP_PDF][0]
        entry = next(f for f in root.files if f.path == path)
        return self._open_verified(layout.aip_key(aip_id, path), entry)

    def _open_verified(self, key: str, entry: FileEntry) -> AbstractContextManager[BinaryIO]:
        stream = self._storage.open(key)
        if isinstance(stream, io.BytesIO):
            # Already in memory whole (a small object on fs): check it now, hand it out as
            # it is (a download of a small file is mostly this wrapper's cost otherwise).
            try:
                data = stream.getvalue()  # the same bytes object, no copy
                actual = hashlib.sha256(data).hexdigest()
                if len(data) != entry.size or actual != entry.sha256:
                    raise IntegrityError(key, entry.sha256, actual)
            except BaseException:
                stream.close()
                raise
            return stream
        return cast(BinaryIO, VerifiedStream(cast(BinaryIO, stream), key, entry))

    def read_text(self, aip_id: str) -> str:
        """The extracted plain text, checked against its SHA-256.

        Raises:
            PackageNotFoundError, IntegrityError, InvalidPackageError, StorageUnavailableError.
        """
        _, root = self._root(aip_id)
        path = root.representations[layout.REP_TEXT][0]
        return self._text(aip_id, next(f for f in root.files if f.path == path))

    def _text(self, aip_id: str, entry: FileEntry) -> str:
        try:
            with self._storage.open(layout.aip_key(aip_id, entry.path)) as stream:
                data = check_bytes(aip_id, entry, stream.read())
        except ObjectNotFoundError as exc:
            raise InvalidPackageError(aip_id, f"{entry.path} is listed but missing") from exc
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPackageError(aip_id, f"{entry.path} is not UTF-8") from exc

    def verify(self, aip_id: str) -> FixityReport:
        """Stream every listed file and compare size and SHA-256 with the root METS.

        Raises:
            PackageNotFoundError, InvalidPackageError, HostileXmlError, StorageUnavailableError.
        """
        data, root = self._root(aip_id)
        checks = []
        for entry in root.files:
            try:
                with self._storage.open(layout.aip_key(aip_id, entry.path)) as stream:
                    digest, size = hash_stream(stream)
            except ObjectNotFoundError:
                checks.append(FileCheck(entry.path, "missing", entry.sha256, entry.size))
                continue
            ok = digest == entry.sha256 and size == entry.size
            status: FixityStatus = "ok" if ok else "mismatch"
            checks.append(FileCheck(entry.path, status, entry.sha256, entry.size, digest, size))
        return FixityReport(
            aip_id=aip_id,
            checked_at=self._clock(),
            root_mets_sha256=hashlib.sha256(data).hexdigest(),
            files=tuple(checks),
        )

    # -- whole-document retention and legal holds (every object of every version) --------------
    #
    # Retention records and holds apply to a *document*: all its AIP versions and the version
    # claims that name them. These methods touch every such object, so disposal can later
    # delete all of them once (and only once) every lock allows it.

    def document_keys(self, document_id: str) -> list[str]:
        """Storage keys of every object of every committed version of the document, and of
        its version claims.

        Raises:
            PackageNotFoundError, StorageUnavailableError.
        """
        keys: list[str] = []
        for aip_id in self.versions(document_id):
            keys.extend(self._storage.keys(layout.aip_prefix(aip_id)))
        keys.extend(self._storage.keys(f"versions/{document_id}/"))
        return keys

    def extend_document_retention(self, document_id: str, until: datetime) -> int:
        """Extend the retention of every object of every version to at least ``until``;
        a longer retention in force stays (COMPLIANCE cannot be shortened). Idempotent;
        returns how many objects were changed.

        Raises:
            PackageNotFoundError, StorageUnavailableError.
        """
        changed = 0
        for key in self.document_keys(document_id):
            current = self._storage.stat(key).retain_until
            if current is None or current < until:
                self._storage.set_retention(key, until)
                changed += 1
        return changed

    def set_document_legal_hold(self, document_id: str, hold: bool) -> int:
        """Place or lift the legal hold on every object of every version. Idempotent;
        returns how many objects were changed.

        Raises:
            PackageNotFoundError, StorageUnavailableError.
        """
        changed = 0
        for key in self.document_keys(document_id):
            if self._storage.stat(key).legal_hold != hold:
                self._storage.set_legal_hold(key, hold)
                changed += 1
        return changed

    def document_locked_until(self, document_id: str) -> datetime | None:
        """The latest retention in force on the root METS of any version (the commit marker
        carries the package's retention; ``seal`` and the methods above give it to every
        file), or None when no version is locked.

        Raises:
            PackageNotFoundError, StorageUnavailableError.
        """
        found = [
            self._storage.stat(layout.aip_key(a, layout.ROOT_METS)).retain_until
            for a in self.versions(document_id)
        ]
        dated = [d for d in found if d is not None]
        return max(dated) if dated else None

    def metadata(self, aip_id: str) -> DocumentMetadata:
        """The package's descriptive metadata (root METS and descriptive file only, checked
        against the root METS; PREMIS and text are not read).

        Raises:
            PackageNotFoundError, IntegrityError, InvalidPackageError, HostileXmlError,
            StorageUnavailableError.
        """
        _, root = self._root(aip_id)
        return read_descriptive(self._read_listed(aip_id, root.descriptive), aip_id=aip_id)

    def legal_hold(self, aip_id: str) -> bool:
        """Whether the package's root METS carries a legal hold (holds are placed on every
        object of every version, so a new version of a held document must be held too).

        Raises:
            PackageNotFoundError, StorageUnavailableError.
        """
        try:
            return self._storage.stat(layout.aip_key(aip_id, layout.ROOT_METS)).legal_hold
        except ObjectNotFoundError as exc:
            raise PackageNotFoundError(aip_id) from exc

    def metadata_and_root_sha256(self, aip_id: str) -> tuple[DocumentMetadata, str]:
        """:meth:`metadata` and the SHA-256 of the root METS it was read from (the manifest
        hash), in one read and without parsing XML when it can: the descriptive metadata from
        the package's index file when its root METS declares it as it is
        (:mod:`archive.index_file`: its size and SHA-256 in the root METS bind it to the
        manifest hash returned), else the full way. Disposal's re-check reads this for every
        document it is about to delete; the index file holds every retention field of
        ``dc.xml`` exactly as :func:`read_descriptive` reads them.

        Raises:
            As :meth:`metadata`.
        """
        try:
            root_mets = self._read_small(layout.aip_key(aip_id, layout.ROOT_METS))
        except ObjectNotFoundError as exc:
            raise PackageNotFoundError(aip_id) from exc
        try:
            data = self._read_small(layout.aip_key(aip_id, layout.INDEX_FILE_PATH))
        except (ObjectNotFoundError, InvalidPackageError):
            data = None  # archived before index files existed (or oversized): the full way
        indexed = None if data is None else read_index_file(aip_id, data, root_mets)
        if indexed is not None:
            return indexed.metadata, hashlib.sha256(root_mets).hexdigest()
        root = read_root(aip_id, root_mets)
        meta = read_descriptive(self._read_listed(aip_id, root.descriptive), aip_id=aip_id)
        return meta, hashlib.sha256(root_mets).hexdigest()
