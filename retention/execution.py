"""Executing an approved disposal proposal: re-check, export, delete, journal, certify.

The proposal's items are handled in fixed batches (the batch size is recorded when the
execution starts, so a resumed run cuts the same batches). For each batch:

1. **Re-check** every item against storage through :class:`RetentionFacts` (never the
   index): due today, not held, action still ``destroy``/``transfer``. Items that are not
   are skipped and reported with the reason. The state read for the decision also gives
   the versions and their root METS hashes, so nothing is read twice.
2. **Intent** ``journal/<n>.intent.json`` (conditional create): per item the outcome and,
   for those to dispose of, the versions and the SHA-256 of each version's root METS, taken
   before anything is deleted.
3. Per item the **transfer export** (``transfer`` only); the batch's **tombstones** in one
   durable batched write; a **last look** for holds right before the deletion (the open
   hold placements read once per batch); then the batch's documents are deleted
   together, every version with its event records, version claims and retention records
   (:func:`archive.destruction.destroy_documents`: first versions' root METS first, two
   durable batch deletes instead of one sync per object, the files removed by many
   threads at once). Hold markers are never deleted. Then the
   batch is removed from the index.
4. **Done** ``journal/<n>.done.json`` with the final outcomes, and a PREMIS event.

Two batches are in flight: while batch n is deleted (on its own thread; the deletion waits
on the disk) batch n+1 goes through steps 1-3 up to its tombstones. The per-item work of a
step (re-checks, exports, listings) runs on ``workers`` threads (default 4) that each take
the next item when free: the work is mostly Python under one GIL, so more threads only
hand the GIL around, and a future per item cost more CPU than a listing or a lock check.
Each batch keeps its own order, so a crash leaves at most two batches open, each finished
from its intent.

A crash anywhere resumes from the journal: a batch with a done record is not touched again;
a batch with only an intent is finished from it (deleting a missing key is a no-op, the
export and tombstone are conditional creates), and an item whose package is still intact is
re-checked first, so a hold placed meanwhile still protects it. Nothing is deleted twice and
nothing is certified that was not deleted. The certificate (:mod:`retention.certificate`) is
built from the done records and stored once; ``executed.json`` closes the proposal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from itertools import islice
from typing import Any

from archive import layout
from archive.destruction import (
    Tombstone,
    destroy_planned,
    plan_destruction,
    read_tombstone,
    remove_tombstone,
    root_mets_sha256,
    write_tombstones,
)
from archive.errors import ObjectLockedError, PackageNotFoundError
from archive.model import PremisEvent
from archive.storage.base import Storage
from archive.threads import each as _each
from retention.certificate import canonical_json, certificate_id_for, store_certificate
from retention.disposal_errors import FourEyesError, ProposalStateError
from retention.layout import records_prefix
from retention.projection import holds_in_force_many
from retention.proposals import ProposalItem, ProposalStatus, ProposalStore
from retention.state import RetentionFacts
from retention.transfer import export_document
from search.base import Index
from search.errors import SearchError

__all__ = ["BATCH_ITEMS", "ExecutionResult", "VersionLister", "execute"]

log = logging.getLogger(__name__)

BATCH_ITEMS = 500
"""Items per journal batch: the work a crash can make a resumed run redo."""

VersionLister = Callable[[str], Sequence[str]]
"""Document id -> AIP ids of its committed versions, oldest first (``AipStore.versions``)."""


@dataclass(frozen=True)
class ExecutionResult:
    proposal_id: str
    certificate_id: str
    destroyed: int
    transferred: int
    skipped: int


@dataclass(frozen=True)
class _Context:
    proposals: ProposalStore
    storage: Storage
    facts: RetentionFacts
    versions: VersionLister
    extra_prefixes: Callable[[str], Sequence[str]]
    proposal_id: str
    certificate_id: str
    today: date
    clock: Callable[[], datetime]
    workers: int


def _skip_id(document_id: str, reason: str) -> dict[str, Any]:
    return {"document_id": document_id, "outcome": "skipped", "reason": reason}


def _skip(item: ProposalItem, reason: str) -> dict[str, Any]:
    return _skip_id(item.document_id, reason)


def _check(ctx: _Context, item: ProposalItem) -> dict[str, Any]:
    """The item's outcome as storage decides it now, with its manifest hashes."""
    try:
        state = ctx.facts.state(item.document_id)
    except PackageNotFoundError:
        tomb = read_tombstone(ctx.storage, item.document_id)
        if tomb is not None and tomb.proposal_id != ctx.proposal_id:
            return _skip(item, f"already disposed of by proposal {tomb.proposal_id}")
        if tomb is not None:  # ours: an earlier, interrupted run of this proposal
            return {"document_id": item.document_id, "outcome": "resume"}
        return _skip(item, "not found in storage")
    if state.on_hold:
        return _skip(item, "under legal hold: " + ", ".join(state.holds))
    if state.action not in ("destroy", "transfer"):
        return _skip(item, f"action is now {state.action}")
    if not state.is_due(ctx.today):
        return _skip(item, f"not due before {state.disposable_on() or 'never'}")
    if state.versions and len(state.root_mets_sha256) == len(state.versions):
        pairs = list(zip(state.versions, state.root_mets_sha256, strict=True))
    else:  # a RetentionFacts that does not say: read them
        pairs = [(a, root_mets_sha256(ctx.storage, a)) for a in ctx.versions(item.document_id)]
    hashes = [{"aip_id": a, "root_mets_sha256": h} for a, h in pairs]
    return {
        "document_id": item.document_id,
        "outcome": state.action,
        "document_type": state.document_type,
        "list_version": state.list_version,
        "retention_until": state.retention_until.isoformat() if state.retention_until else None,
        "manifest_sha256": hashes[-1]["root_mets_sha256"],
        "versions": hashes,
    }


def _committed(storage: Storage, document_id: str) -> bool:
    return storage.exists(layout.aip_key(document_id, layout.ROOT_METS))


def _prepare(ctx: _Context, entry: dict[str, Any], resumed: bool) -> dict[str, Any]:
    """Everything before the deletion of one intent entry but its tombstone: a re-check
    when resuming, the transfer export, a last look for holds. Returns the entry's final
    outcome, or the entry marked ``ready`` for the tombstones and the batch deletion."""
    doc = entry["document_id"]
    if entry["outcome"] == "resume":
        return _prepare_from_tombstone(ctx, doc)
    if entry["outcome"] not in ("destroy", "transfer"):
        return entry
    if resumed and _committed(ctx.storage, doc):
        # Untouched by the interrupted run: the world may have changed since the intent.
        again = _check(ctx, ProposalItem(doc))
        if again["outcome"] not in ("destroy", "transfer"):
            _drop_our_tombstone(ctx, doc)
            return again
    aip_ids = [v["aip_id"] for v in entry["versions"]]
    done = dict(entry)
    if entry["outcome"] == "transfer":
        export = export_document(ctx.storage, ctx.proposal_id, doc, aip_ids)
        done["export"] = {"key": export.key, "sha256": export.sha256, "size": export.size}
    done["ready"] = True
    return done


def _last_look(
    ctx: _Context, pool: ThreadPoolExecutor, prepared: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Right before the batch is deleted (its tombstones are written): a hold placed after
    the check keeps its document, whose tombstone then goes again. The hold's marker may
    precede its object locks, so the marker is what counts here. One read of the open
    placements for the whole batch, then one listing per document."""
    ready = [e["document_id"] for e in prepared if e.get("ready")]
    holds = holds_in_force_many(
        ctx.storage, ready, mapper=lambda fn, ids: _each(pool, ctx.workers, fn, ids)
    )
    looked = []
    for entry in prepared:
        doc = entry["document_id"]
        if holds.get(doc) and _committed(ctx.storage, doc):
            _drop_our_tombstone(ctx, doc)
            entry = _skip_id(doc, "under legal hold: " + ", ".join(holds[doc]))
        looked.append(entry)
    return looked


def _tombstones(ctx: _Context, prepared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write the tombstones of the batch's ``ready`` entries before anything is deleted;
    an entry whose document another proposal disposed of first is skipped."""
    new = [
        Tombstone(e["document_id"], e["manifest_sha256"], e["outcome"], ctx.proposal_id,
                  ctx.certificate_id, ctx.clock())
        for e in prepared
        if e.get("ready") and "disposed_at" not in e
    ]  # fmt: skip
    stored = write_tombstones(ctx.storage, new)
    outcomes = []
    for entry in prepared:
        tomb = stored.get(entry["document_id"])
        if tomb is not None and tomb.proposal_id != ctx.proposal_id:
            entry = _skip_id(
                tomb.document_id, f"already disposed of by proposal {tomb.proposal_id}"
            )
        elif tomb is not None:
            entry["disposed_at"] = tomb.disposed_at.isoformat()
        outcomes.append(entry)
    return outcomes


def _prepare_from_tombstone(ctx: _Context, document_id: str) -> dict[str, Any]:
    """An earlier run of this proposal left its tombstone and deleted the root METS before
    this intent was computed: only the tombstone knows the manifest hash."""
    tomb = read_tombstone(ctx.storage, document_id)
    if tomb is None:
        return _skip_id(document_id, "not found in storage")
    return {"document_id": document_id, "outcome": tomb.action,
            "manifest_sha256": tomb.manifest_sha256, "versions": [],
            "disposed_at": tomb.disposed_at.isoformat(), "ready": True}  # fmt: skip


def _plan(ctx: _Context, entry: dict[str, Any]) -> list[str] | ObjectLockedError:
    """The keys of a ``ready`` entry's document, every lock checked (or the lock that
    protects it)."""
    doc = entry["document_id"]
    try:
        return plan_destruction(
            ctx.storage, doc, [v["aip_id"] for v in entry["versions"]],
            extra_prefixes=ctx.extra_prefixes(doc), now=ctx.clock(),
        )  # fmt: skip
    except ObjectLockedError as exc:
        return exc


def _destroy(
    ctx: _Context,
    prepared: list[dict[str, Any]],
    plans: dict[str, list[str] | ObjectLockedError],
) -> list[dict[str, Any]]:
    """Delete every ``ready`` document of the batch (:func:`destroy_planned`: two batch
    deletes); return the final outcomes. A document a lock protects is skipped."""
    ready = {e["document_id"]: None for e in prepared if e.pop("ready", False)}
    destroy_planned(ctx.storage, [p for d in ready if isinstance(p := plans[d], list)])
    outcomes = []
    for entry in prepared:
        doc = entry["document_id"]
        refused = plans.get(doc) if doc in ready else None
        if isinstance(refused, ObjectLockedError):
            if not _committed(ctx.storage, doc):
                raise refused  # half-deleted by an earlier run and now locked: stop
            _drop_our_tombstone(ctx, doc)
            entry = _skip_id(doc, f"locked: {refused}")
        outcomes.append(entry)
    return outcomes


def _drop_our_tombstone(ctx: _Context, document_id: str) -> None:
    tomb = read_tombstone(ctx.storage, document_id)
    if tomb is not None and tomb.proposal_id == ctx.proposal_id:
        remove_tombstone(ctx.storage, document_id)


def _batches(items: Iterator[ProposalItem], size: int) -> Iterator[list[ProposalItem]]:
    while batch := list(islice(items, size)):
        yield batch


def _check_approved(status: ProposalStatus) -> None:
    pid = status.proposal.proposal_id
    decision, review = status.decision, status.review
    if decision is None or decision.kind != "approval" or review is None:
        raise ProposalStateError(pid, status.state, "execute (it is not approved)")
    if decision.archivist == review.archivist:  # never stored by approve(); checked anyway
        raise FourEyesError(pid, review.archivist)


def execute(
    proposals: ProposalStore,
    proposal_id: str,
    *,
    facts: RetentionFacts,
    index: Index,
    versions: VersionLister,
    sign: Callable[[bytes], bytes],
    executor: str,
    clock: Callable[[], datetime],
    new_id: Callable[[], str],
    extra_prefixes: Callable[[str], Sequence[str]] = lambda doc: (records_prefix(doc),),
    batch_items: int = BATCH_ITEMS,
    workers: int = 4,
    progress: Callable[[int], None] | None = None,
) -> ExecutionResult:
    """Execute (or resume) an approved proposal; return what the certificate records.

    Idempotent: an executed proposal returns its result without doing anything.

    Raises:
        ProposalNotFoundError.
        ProposalStateError: the proposal is not approved (or was rejected).
        FourEyesError: its review and approval name the same archivist.
        SigningError: the certificate could not be signed (a retry resumes).
        StorageUnavailableError; ObjectLockedError when a lock appeared half-way through a
        document (a retry resumes and finishes it once the lock allows).
    """
    status = proposals.status(proposal_id)
    _check_approved(status)
    if status.executed is not None:
        return _result(proposal_id, status.executed)
    started = proposals.ensure_record(
        proposal_id,
        "execution.json",
        {"executor": executor, "started_at": clock().isoformat(), "batch_items": batch_items},
    )
    size = int(started["batch_items"])
    ctx = _Context(
        proposals,
        proposals.storage,
        facts,
        versions,
        extra_prefixes,
        proposal_id,
        certificate_id_for(proposal_id),
        clock().date(),
        clock,
        workers,
    )

    # Two batches use the pool at once (checks of n+1, last look of n), each with
    # ``workers - 1`` helpers: room for both, so neither waits for the other's items.
    helpers = max(1, 2 * (workers - 1))
    with ThreadPoolExecutor(max_workers=helpers, thread_name_prefix="dispose") as pool:
        _run_batches(ctx, pool, index, new_id, progress, size)
    certificate = store_certificate(
        proposals.storage,
        ctx.certificate_id,
        lambda: _certificate(ctx, proposals.status(proposal_id), started),
        sign,
    )
    content = certificate.content
    summary = {
        "certificate_id": ctx.certificate_id,
        "at": clock().isoformat(),
        "destroyed": content["counts"]["destroyed"],
        "transferred": content["counts"]["transferred"],
        "skipped": content["counts"]["skipped"],
    }
    if proposals.read_record(proposal_id, "executed.json") is None:
        proposals.append_event(
            proposal_id,
            PremisEvent(new_id(), "digital signature generation", clock(), "success",
                        f"destruction certificate {ctx.certificate_id} signed", (executor,)),
        )  # fmt: skip
    return _result(proposal_id, proposals.ensure_record(proposal_id, "executed.json", summary))


@dataclass(frozen=True)
class _Staged:
    """A batch whose intent is recorded, whose tombstones are written and whose documents'
    keys are listed and lock-checked: ready to delete."""

    n: int
    prepared: list[dict[str, Any]]
    plans: dict[str, list[str] | ObjectLockedError]


def _stage(ctx: _Context, pool: ThreadPoolExecutor, n: int, batch: list[ProposalItem]) -> _Staged:
    """Steps 1-3 of a batch up to its deletion: re-check, intent, exports, tombstones, and
    the keys to delete with their locks checked."""
    intent_name = f"journal/{n:06d}.intent.json"
    intent = ctx.proposals.read_record(ctx.proposal_id, intent_name)
    resumed = intent is not None
    if intent is None:
        entries = _each(pool, ctx.workers, lambda item: _check(ctx, item), batch)
        intent = ctx.proposals.ensure_record(ctx.proposal_id, intent_name, {"items": entries})
        resumed = intent["items"] != entries  # a concurrent run wrote it first
    if any(e["outcome"] == "resume" for e in intent["items"]):
        resumed = True  # an earlier run's tombstone without its journal: finish from storage
    prepared = _each(pool, ctx.workers, lambda e: _prepare(ctx, e, resumed), intent["items"])
    prepared = _tombstones(ctx, prepared)
    ready = [e for e in prepared if e.get("ready")]
    planned = _each(pool, ctx.workers, lambda e: _plan(ctx, e), ready)
    plans = dict(zip([e["document_id"] for e in ready], planned, strict=True))
    return _Staged(n, prepared, plans)


def _finish(
    ctx: _Context,
    pool: ThreadPoolExecutor,
    index: Index,
    staged: _Staged,
    new_id: Callable[[], str],
) -> None:
    """Step 3's deletion and step 4 of a staged batch: last look, delete, index, done."""
    n = staged.n
    looked = _last_look(ctx, pool, staged.prepared)
    outcomes = _destroy(ctx, looked, staged.plans)
    gone = [e["document_id"] for e in outcomes if e["outcome"] in ("destroy", "transfer")]
    try:
        index.remove(gone)
    except SearchError as exc:  # storage is the truth; index reconcile removes them later
        log.warning("disposed documents not removed from the index yet (%s)", exc)
    ctx.proposals.ensure_record(ctx.proposal_id, f"journal/{n:06d}.done.json", {"items": outcomes})
    for kind, event_type in (("destroy", "deletion"), ("transfer", "transfer")):
        ids = [e["document_id"] for e in outcomes if e["outcome"] == kind]
        if ids:
            ctx.proposals.append_event(
                ctx.proposal_id,
                PremisEvent(new_id(), event_type, ctx.clock(), "success",
                            f"batch {n}: {len(ids)} documents: " + " ".join(ids),
                            ("kluis",)),
            )  # fmt: skip


def _run_batches(
    ctx: _Context,
    pool: ThreadPoolExecutor,
    index: Index,
    new_id: Callable[[], str],
    progress: Callable[[int], None] | None,
    size: int,
) -> None:
    """Every batch without a done record, two at a time: batch n is deleted (waiting on
    the disk, mostly) on its own thread while batch n+1 is checked, exported and
    tombstoned. Each batch keeps its own order (intent, tombstones, deletion, done), so a
    crash leaves at most two open batches, each finished from its intent like one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dispose-delete") as deleter:
        pending: Future[None] | None = None
        pending_ids: set[str] = set()
        pending_size = 0

        def settle() -> None:
            nonlocal pending
            if pending is not None:
                pending.result()
                pending = None
                if progress is not None:
                    progress(pending_size)

        for n, batch in enumerate(_batches(ctx.proposals.items(ctx.proposal_id), size)):
            if ctx.proposals.read_record(ctx.proposal_id, f"journal/{n:06d}.done.json"):
                if progress is not None:
                    progress(len(batch))
                continue
            ids = {item.document_id for item in batch}
            if ids & pending_ids:
                settle()  # the same document twice: check it only after its deletion
            staged = _stage(ctx, pool, n, batch)
            settle()
            pending = deleter.submit(_finish, ctx, pool, index, staged, new_id)
            pending_ids, pending_size = ids, len(batch)
        settle()


def _done_entries(ctx: _Context, batches: int) -> Iterator[dict[str, Any]]:
    for n in range(batches):
        record = ctx.proposals.read_record(ctx.proposal_id, f"journal/{n:06d}.done.json")
        if record is None:
            raise ProposalStateError(ctx.proposal_id, "executing", f"certify (batch {n} open)")
        yield from record["items"]


def _certificate(ctx: _Context, status: ProposalStatus, started: dict[str, Any]) -> bytes:
    proposal = status.proposal
    size = int(started["batch_items"])
    batches = (proposal.item_count + size - 1) // size
    disposed: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for entry in _done_entries(ctx, batches):
        if entry["outcome"] in ("destroy", "transfer"):
            row = {k: entry.get(k) for k in ("document_id", "document_type", "list_version",
                   "retention_until", "manifest_sha256", "versions", "disposed_at")}  # fmt: skip
            row["action"] = entry["outcome"]
            if "export" in entry:
                row["export_sha256"] = entry["export"]["sha256"]
            disposed.append(row)
        else:
            skipped.append({"document_id": entry["document_id"], "reason": entry["reason"]})
    assert status.review is not None and status.decision is not None
    content = {
        "type": "kluis-destruction-certificate",
        "format_version": 1,
        "certificate_id": ctx.certificate_id,
        "proposal": {
            "id": proposal.proposal_id,
            "created_at": proposal.created_at.isoformat(),
            "proposed_by": proposal.proposed_by,
            "due_before": proposal.due_before.isoformat(),
        },
        "review": {"archivist": status.review.archivist, "at": status.review.at.isoformat()},
        "approval": {
            "archivist": status.decision.archivist,
            "at": status.decision.at.isoformat(),
        },
        "execution": {
            "executor": started["executor"],
            "started_at": started["started_at"],
            "finished_at": ctx.clock().isoformat(),
        },
        "list_versions": sorted({str(r["list_version"]) for r in disposed if r["list_version"]}),
        "counts": {
            "destroyed": sum(1 for r in disposed if r["action"] == "destroy"),
            "transferred": sum(1 for r in disposed if r["action"] == "transfer"),
            "skipped": len(skipped),
        },
        "disposed": disposed,
        "skipped": skipped,
    }
    return canonical_json(content)


def _result(proposal_id: str, executed: Any) -> ExecutionResult:
    return ExecutionResult(
        proposal_id,
        str(executed["certificate_id"]),
        int(executed["destroyed"]),
        int(executed["transferred"]),
        int(executed["skipped"]),
    )
