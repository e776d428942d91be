"""Destroying a whole document (every version of its package) and the tombstone it leaves.

This is the only code that deletes committed packages. It decides nothing: retention
(disposal execution) checks the selection list, holds and approvals first and calls
:func:`destroy_document` only for documents it may destroy. The storage's lock rules still
apply underneath: an object under retention or legal hold makes :func:`destroy_document`
raise :class:`ObjectLockedError` before it deletes anything (a pre-check over every key), and
the backend refuses each delete on its own as well (on S3 COMPLIANCE, even for an operator).

Order, so that a crash at any point leaves something a resumed run finishes: the root METS
of the first version goes first (the document becomes *uncommitted*, so no reader serves a
half-deleted package or falls back to an older version), then those of the other versions,
then their other files, leftover commit intents (which hold the package's bytes and
from which reconcile would write it again), its event records, the version claims and any
``extra_prefixes`` (retention and hold records next to the document). Every step is
idempotent: deleting a missing key is not an error.

A tombstone ``disposed/<document id>.json`` remembers that the document existed and was
disposed of: id, manifest hash, action, proposal and certificate id, time. It holds no
personal data (no owner, no title, no agency reference), so it may be kept forever: an
agency retrying the same reference gets "gone" instead of a second ingest, and reconcile
never treats the document's leftover idempotency claim as an abandoned ingest.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from archive import layout
from archive.commit_intent import intent_key
from archive.errors import ObjectExistsError, ObjectLockedError, ObjectNotFoundError
from archive.events import EVENTS_PREFIX
from archive.storage.base import NewBatch, NewObject, Storage, check_key

__all__ = [
    "TOMBSTONE_PREFIX",
    "Tombstone",
    "destroy_document",
    "destroy_documents",
    "destroy_planned",
    "document_keys",
    "iter_tombstones",
    "plan_destruction",
    "read_tombstone",
    "remove_tombstone",
    "root_mets_sha256",
    "write_tombstone",
    "write_tombstones",
]

TOMBSTONE_PREFIX = "disposed/"


@dataclass(frozen=True)
class Tombstone:
    """What remains of a disposed document. No personal data."""

    document_id: str
    manifest_sha256: str
    """SHA-256 of the newest version's root METS, taken before deletion."""
    action: str
    """``destroy`` or ``transfer``."""
    proposal_id: str
    certificate_id: str
    disposed_at: datetime

    def to_json(self) -> bytes:
        # Field by field: ``asdict`` deep-copies each value (3x the CPU, once per tombstone).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["disposed_at"] = self.disposed_at.isoformat()
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Tombstone:
        data = json.loads(raw)
        data["disposed_at"] = datetime.fromisoformat(data["disposed_at"])
        return cls(**data)


def _tombstone_key(document_id: str) -> str:
    return check_key(f"{TOMBSTONE_PREFIX}{document_id}.json")


def read_tombstone(storage: Storage, document_id: str) -> Tombstone | None:
    """The document's tombstone, if it was disposed of.

    Raises:
        InvalidKeyError, StorageUnavailableError.
    """
    try:
        with storage.open(_tombstone_key(document_id)) as stream:
            return Tombstone.from_json(stream.read())
    except ObjectNotFoundError:
        return None


def write_tombstone(storage: Storage, tombstone: Tombstone) -> Tombstone:
    """Create the tombstone (conditional create); return the one stored, which is an earlier
    writer's when it exists already (a resumed or concurrent execution).

    Raises:
        InvalidKeyError, StorageUnavailableError.
    """
    raw = tombstone.to_json()
    try:
        storage.put(
            _tombstone_key(tombstone.document_id),
            io.BytesIO(raw),
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            if_absent=True,
        )
    except ObjectExistsError:
        existing = read_tombstone(storage, tombstone.document_id)
        if existing is None:  # removed in between: try once more
            return write_tombstone(storage, tombstone)
        return existing
    return tombstone


def write_tombstones(storage: Storage, tombstones: Sequence[Tombstone]) -> dict[str, Tombstone]:
    """Create many tombstones in one batched durable write (:meth:`Storage.put_batches`,
    one ``exclusive`` batch: strict conditional creates, made durable together instead of
    one sync each); return the stored tombstone per document, which is an earlier writer's
    where one exists.

    When any of them exists already (a resumed or concurrent execution), the batch fails
    with :class:`ObjectExistsError` and each is settled on its own with a strict
    conditional create (:func:`write_tombstone`), which returns the stored one.

    Raises:
        InvalidKeyError, StorageUnavailableError.
    """
    objects = []
    for tomb in tombstones:
        raw = tomb.to_json()
        objects.append(
            NewObject(_tombstone_key(tomb.document_id), raw, hashlib.sha256(raw).hexdigest())
        )
    if objects:
        try:
            storage.put_batches([NewBatch(objects, exclusive=True)])
            return {t.document_id: t for t in tombstones}
        except ObjectExistsError:
            pass  # settle each one strictly
    return {t.document_id: write_tombstone(storage, t) for t in tombstones}


def remove_tombstone(storage: Storage, document_id: str) -> None:
    """Remove a tombstone written for a document that was then NOT destroyed (a resumed
    execution found it held). Raises: StorageUnavailableError."""
    storage.delete(_tombstone_key(document_id))


def root_mets_sha256(storage: Storage, aip_id: str) -> str:
    """SHA-256 of a committed package's root METS bytes (its manifest hash).

    Raises:
        ObjectNotFoundError: the package is not committed.
        StorageUnavailableError.
    """
    digest = hashlib.sha256()
    with storage.open(layout.aip_key(aip_id, layout.ROOT_METS)) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _claimed_aip_ids(storage: Storage, claims: Sequence[str]) -> list[str]:
    """AIP ids named by the document's version claims (their keys), committed or not."""
    found = []
    for key in claims:
        try:
            with storage.open(key) as stream:
                found.append(stream.read(200).decode().partition("\n")[0])
        except ObjectNotFoundError:
            continue
    return [a for a in found if a and "/" not in a]


def document_keys(
    storage: Storage,
    document_id: str,
    aip_ids: Sequence[str] = (),
    *,
    extra_prefixes: Sequence[str] = (),
) -> list[str]:
    """Every stored key of the document, root METS files first (the first version's, then
    the others newest first).

    ``aip_ids`` adds versions known from elsewhere (a journal) to those the version claims
    name, so a resumed run still finds versions whose claims it already deleted.

    Raises:
        InvalidKeyError, StorageUnavailableError.
    """

    def listing(prefix: str) -> list[str]:
        return list(storage.keys(check_key(prefix.rstrip("/")) + "/"))

    claims = listing(f"versions/{document_id}")
    versions = list(dict.fromkeys([document_id, *aip_ids, *_claimed_aip_ids(storage, claims)]))
    # The first version's root METS first: without it the document resolves to nothing, so
    # no reader falls back to an older version while the newer ones are being deleted.
    roots = [layout.aip_key(a, layout.ROOT_METS) for a in [versions[0], *reversed(versions[1:])]]
    root_set = set(roots)
    listed: list[str] = []
    for aip_id in versions:
        listed += listing(layout.aip_prefix(aip_id))
        listed += listing(f"{EVENTS_PREFIX}{aip_id}")
        # A commit intent left by a crash after the commit holds the package's bytes, and
        # reconcile would write the package again from it: it goes with the package.
        if storage.exists(intent_key(aip_id)):
            listed.append(intent_key(aip_id))
    listed += claims
    for prefix in extra_prefixes:
        listed += listing(prefix)
    present = set(listed)  # a root METS exists if its package's listing found it
    rest = [k for k in listed if k not in root_set]
    return [k for k in roots if k in present] + list(dict.fromkeys(rest))


def _check_unlocked(storage: Storage, keys: Sequence[str], now: datetime) -> None:
    for key in keys:
        try:
            info = storage.stat(key)
        except ObjectNotFoundError:
            continue
        if info.legal_hold or (info.retain_until is not None and info.retain_until > now):
            raise ObjectLockedError(key, info.retain_until, legal_hold=info.legal_hold)


def destroy_document(
    storage: Storage,
    document_id: str,
    aip_ids: Sequence[str] = (),
    *,
    extra_prefixes: Sequence[str] = (),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Delete every object of the document (see the module docstring); return how many.

    Idempotent: a second call deletes nothing and returns 0.

    Raises:
        ObjectLockedError: an object is under retention or legal hold; nothing was deleted
            by this call when the pre-check found it (a lock placed concurrently may stop
            the deletion half-way, and the storage refuses that object).
        InvalidKeyError, StorageUnavailableError.
    """
    keys = document_keys(storage, document_id, aip_ids, extra_prefixes=extra_prefixes)
    _check_unlocked(storage, keys, clock())
    storage.delete_many(keys[:1])  # the first version's root METS: the document is gone
    storage.delete_many(keys[1:])
    return len(keys)


def plan_destruction(
    storage: Storage,
    document_id: str,
    aip_ids: Sequence[str] = (),
    *,
    extra_prefixes: Sequence[str] = (),
    now: datetime,
) -> list[str]:
    """Every key of the document (:func:`document_keys`) after checking that no lock
    forbids deleting any of them at ``now``: what :func:`destroy_planned` deletes.

    Raises:
        ObjectLockedError: an object is under retention or legal hold.
        InvalidKeyError, StorageUnavailableError.
    """
    keys = document_keys(storage, document_id, aip_ids, extra_prefixes=extra_prefixes)
    _check_unlocked(storage, keys, now)
    return keys


def destroy_planned(storage: Storage, plans: Sequence[Sequence[str]]) -> None:
    """Delete planned documents (:func:`plan_destruction`) in the order of
    :func:`destroy_document`, batched: the root METS of every document first (one durable
    ``delete_many``), then everything else (another), so a directory is synced once per
    batch instead of once per object.

    Raises:
        ObjectLockedError: a lock appeared since the plan (the storage checks every object
            of a call before it deletes any; a rerun finishes).
        InvalidKeyError, StorageUnavailableError.
    """
    roots: list[str] = []
    rest: list[str] = []
    for keys in plans:
        for key in keys:
            is_root = key.endswith("/" + layout.ROOT_METS) and key.count("/") == 2
            (roots if is_root else rest).append(key)
    storage.delete_many(roots)
    storage.delete_many(rest)


def destroy_documents(
    storage: Storage,
    documents: Sequence[tuple[str, Sequence[str]]],
    *,
    extra_prefixes: Callable[[str], Sequence[str]] = lambda _doc: (),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    workers: int = 1,
) -> dict[str, ObjectLockedError]:
    """Delete many documents (``(document id, known AIP ids)`` each) in one go; return the
    documents a lock protects, untouched, with the error that says why.

    :func:`plan_destruction` of each (on ``workers`` threads: listings and lock checks wait
    on storage), then :func:`destroy_planned` of those no lock protects.

    Raises:
        ObjectLockedError: a lock appeared between the check and the deletion (the
            documents up to that object are deleted; a rerun finishes the others).
        InvalidKeyError, StorageUnavailableError.
    """
    now = clock()

    def plan(document: tuple[str, Sequence[str]]) -> list[str] | ObjectLockedError:
        document_id, aip_ids = document
        try:
            extra = extra_prefixes(document_id)
            return plan_destruction(storage, document_id, aip_ids, extra_prefixes=extra, now=now)
        except ObjectLockedError as exc:
            return exc

    if workers > 1 and len(documents) > 1:
        with ThreadPoolExecutor(min(workers, len(documents)), "destroy") as pool:
            plans = list(pool.map(plan, documents))
    else:
        plans = [plan(document) for document in documents]
    refused: dict[str, ObjectLockedError] = {}
    planned: list[list[str]] = []
    for (document_id, _), found in zip(documents, plans, strict=True):
        if isinstance(found, ObjectLockedError):
            refused[document_id] = found
        else:
            planned.append(found)
    destroy_planned(storage, planned)
    return refused


def iter_tombstones(storage: Storage) -> Iterator[Tombstone]:
    """Every tombstone, in id order. Raises: StorageUnavailableError."""
    for key in storage.keys(TOMBSTONE_PREFIX):
        try:
            with storage.open(key) as stream:
                yield Tombstone.from_json(stream.read())
        except ObjectNotFoundError:
            continue
