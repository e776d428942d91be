"""Job functions the scheduler runs: fixity rotation, signature upkeep, the disposal sweep
and the execution of approved disposal proposals.

Plain functions taking the services they need and the job's :class:`~archive.leases.Lease`.
Each calls ``lease.keep()`` before every unit of work (one package, one document), so a
holder that lost its lease stops; each keeps a checkpoint in storage after every unit, so
the next run (here or on another instance) resumes where this one stopped. Both are
idempotent: repeating a unit records one more fixity event, or finds the renewed document no
longer due.

Both *rotate*: a run takes the next N ids after the checkpoint's cursor, in key order, and
wraps around at the end, so the whole archive is covered every (ids / N) runs however often
runs are interrupted.

Checkpoints are small JSON objects under ``job-state/<job>/<sequence:012d>``: a new one is a
conditional create of the next sequence number, then older ones are deleted (overwriting one
key would pile up versions in a versioned S3 bucket). They carry no retention.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from archive.errors import (
    ArchiveError,
    HostileXmlError,
    InvalidPackageError,
    ObjectLockedError,
    ObjectNotFoundError,
    PackageNotFoundError,
)
from archive.events import EventLog, check_fixity
from archive.leases import Lease
from archive.storage.base import Storage, check_key
from archive.store import AipStore
from retention.disposal import Disposal
from retention.errors import RenewalConflictError, RenewalRejectedError, RetentionError
from retention.upkeep import renew_document
from signing.errors import SigningError, UnreadablePdfError
from signing.upkeep import evidence_expiry

__all__ = [
    "JOB_STATE_PREFIX",
    "Checkpoint",
    "FixityRotationReport",
    "UpkeepPolicy",
    "UpkeepReport",
    "DisposalRunReport",
    "execute_approved",
    "rotate_fixity",
    "signature_upkeep",
    "sweep_due",
]

JOB_STATE_PREFIX = "job-state/"
log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


class Checkpoint:
    """The resumable state of one job: a JSON object in storage, written under its lease."""

    def __init__(self, storage: Storage, job: str) -> None:
        if "/" in job:
            raise ValueError("a job name is a single key segment")
        self._storage = storage
        self._prefix = check_key(f"{JOB_STATE_PREFIX}{job}") + "/"

    def _sequences(self) -> list[int]:
        found = (k.rsplit("/", 1)[-1] for k in self._storage.keys(self._prefix))
        return sorted(int(s) for s in found if s.isdigit())

    def read(self) -> dict[str, Any]:
        """The newest saved state ({} before the first save).

        Raises:
            StorageUnavailableError.
        """
        for sequence in reversed(self._sequences()):
            try:
                with self._storage.open(f"{self._prefix}{sequence:012d}") as stream:
                    state = json.loads(stream.read(1 << 20))
            except ObjectNotFoundError:
                continue
            except ValueError:
                log.warning("unreadable checkpoint %s%012d ignored", self._prefix, sequence)
                continue
            if isinstance(state, dict):
                return state
        return {}

    def save(self, state: dict[str, Any]) -> None:
        """Store ``state`` as the newest checkpoint and drop the older ones.

        Raises:
            ObjectExistsError: another writer saved concurrently (its lease was not exclusive).
            StorageUnavailableError.
        """
        sequences = self._sequences()
        nxt = (sequences[-1] + 1) if sequences else 1
        data = json.dumps(state, sort_keys=True).encode()
        self._storage.put(
            f"{self._prefix}{nxt:012d}",
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            if_absent=True,
        )
        for old in sequences:
            try:
                self._storage.delete(f"{self._prefix}{old:012d}")
            except ArchiveError as exc:  # housekeeping: the next save retries
                log.warning("could not remove old checkpoint %s%012d: %s", self._prefix, old, exc)


def _rotation(ids: Callable[[], Iterator[str]], after: str | None) -> Iterator[tuple[str, bool]]:
    """Ids after ``after`` in key order, then from the start up to ``after`` again.

    Yields ``(id, wrapped)``; ``wrapped`` turns True for the first id of the next cycle. A
    run starting at the beginning ends at the end (nothing is visited twice in one run).
    ``ids`` come from a listing of ``aips/<id>/...`` keys, so they are ordered as ``<id>/``
    (AIP ids are UUIDs of one length today, where both orders agree).
    """
    mark = None if after is None else f"{after}/"
    for one in ids():
        if mark is None or f"{one}/" > mark:
            yield one, False
    if mark is None:
        return
    for one in ids():
        if f"{one}/" > mark:
            return
        yield one, True


@dataclass(frozen=True)
class FixityRotationReport:
    checked: tuple[str, ...]
    """Packages checked in this run (a fixity event was recorded for each)."""
    corrupt: tuple[str, ...]
    """Packages with a missing or altered file, or an unreadable root METS."""
    cursor: str | None
    """The last package checked; the next run starts after it."""
    cycle: int
    """Number of the pass over the archive the cursor is in (starts at 1)."""
    completed_cycles: int = 0
    """Passes over the whole archive completed during this run."""
    details: dict[str, str] = field(default_factory=dict)
    """Per corrupt package: what is wrong."""


def rotate_fixity(
    store: AipStore,
    events: EventLog,
    storage: Storage,
    lease: Lease,
    *,
    sample: int,
    job: str = "fixity",
    new_id: Callable[[], str] = _new_id,
    clock: Callable[[], datetime] = _utcnow,
) -> FixityRotationReport:
    """Check the next ``sample`` packages after the stored cursor (wrapping around), record a
    PREMIS fixity event for each, and report the corrupt ones.

    A package removed between listing and checking (disposed) is skipped. A package whose
    root METS no longer parses is corrupt (no event can name its files).

    Raises:
        LeaseLostError: the lease was lost; the checkpoint names the last package checked.
        StorageUnavailableError: storage failed; the next run resumes at the checkpoint.
    """
    if sample < 1:
        raise ValueError("sample must be at least 1")
    checkpoint = Checkpoint(storage, job)
    state = checkpoint.read()
    after: str | None = state.get("after")
    cycle = int(state.get("cycle", 1))
    completed = 0
    checked: list[str] = []
    corrupt: dict[str, str] = {}
    cursor: str | None = after
    for aip_id, wrapped in _rotation(store.aip_ids, after):
        if len(checked) == sample:
            break
        if wrapped and not completed:
            completed, cycle = 1, cycle + 1  # crossed the end of the listing: a pass is done
        lease.keep()
        try:
            outcome = check_fixity(store, events, storage, aip_id, new_id=new_id, clock=clock)
        except PackageNotFoundError:
            continue  # disposed since it was listed
        except (InvalidPackageError, HostileXmlError) as exc:
            corrupt[aip_id] = str(exc)
        else:
            if not outcome.report.ok:
                problems = outcome.report.problems
                corrupt[aip_id] = "; ".join(f"{f.path} {f.status}" for f in problems)
        checked.append(aip_id)
        if aip_id in corrupt:
            log.error("fixity: package %s is corrupt: %s", aip_id, corrupt[aip_id])
        cursor = aip_id
        checkpoint.save({"after": cursor, "cycle": cycle})
    else:
        # The rotation ran out before the sample was full: the listing's end was crossed.
        if not completed and (checked or after is not None):
            completed, cycle = 1, cycle + 1
            cursor = None
            checkpoint.save({"after": None, "cycle": cycle})
    return FixityRotationReport(tuple(checked), tuple(corrupt), cursor, cycle, completed, corrupt)


@dataclass(frozen=True)
class UpkeepPolicy:
    horizon: timedelta
    """Renew evidence that expires within this long."""
    settle: timedelta
    """Augment B-T documents once they are this old."""
    batch: int
    """Documents examined per run."""


@dataclass(frozen=True)
class UpkeepReport:
    examined: int
    renewed: tuple[tuple[str, str], ...] = ()
    """(document id, new version's AIP id): evidence about to expire, renewed."""
    augmented: tuple[tuple[str, str], ...] = ()
    """(document id, new version's AIP id): B-T raised to B-LTA."""
    failed: tuple[tuple[str, str], ...] = ()
    """(document id, why): needs a human (unreadable PDF, rejected renewal, TSA down)."""
    cursor: str | None = None


def signature_upkeep(
    store: AipStore,
    storage: Storage,
    lease: Lease,
    *,
    renew: Callable[[bytes], bytes],
    augment: Callable[[bytes], bytes],
    trust_roots: Sequence[bytes],
    policy: UpkeepPolicy,
    job: str = "upkeep",
    clock: Callable[[], datetime] = _utcnow,
    new_id: Callable[[], str] = _new_id,
) -> UpkeepReport:
    """Examine the next ``policy.batch`` documents after the stored cursor (wrapping around):

    * a newest version sealed at B-T and older than ``policy.settle`` is augmented
      (``augment``, e.g. :func:`signing.augment` to B-LTA) into a new AIP version;
    * otherwise, evidence whose newest time-stamp (or, without one, certificate) expires
      within ``policy.horizon`` is renewed (``renew``, e.g. :func:`signing.renew`).

    Both go through :func:`retention.upkeep.renew_document`, which validates the new bytes
    before it stores them. A document another writer renewed meanwhile is skipped (it is
    examined again next cycle); failures of one document are reported, not raised.

    Raises:
        LeaseLostError: the lease was lost; the checkpoint names the last document examined.
        StorageUnavailableError: storage failed; the next run resumes at the checkpoint.
    """
    checkpoint = Checkpoint(storage, job)
    state = checkpoint.read()
    after: str | None = state.get("after")
    examined = 0
    renewed: list[tuple[str, str]] = []
    augmented: list[tuple[str, str]] = []
    failed: list[tuple[str, str]] = []
    cursor = after
    wrapped_any = False
    for document_id, wrapped in _rotation(store.document_ids, after):
        if examined == policy.batch:
            break
        wrapped_any = wrapped_any or wrapped
        lease.keep()
        examined += 1
        try:
            action = _upkeep_action(store, document_id, policy, clock())
            if action is not None:
                kind, why = action
                new_aip = renew_document(
                    store,
                    document_id,
                    renew=augment if kind == "augment" else renew,
                    trust_roots=trust_roots,
                    clock=clock,
                    new_id=new_id,
                )
                (augmented if kind == "augment" else renewed).append((document_id, new_aip))
                log.info("upkeep: %s %s (%s) as %s", kind, document_id, why, new_aip)
        except (PackageNotFoundError, RenewalConflictError):
            pass  # disposed, or renewed by another writer: looked at again next cycle
        except (RenewalRejectedError, SigningError, InvalidPackageError, HostileXmlError) as exc:
            failed.append((document_id, str(exc)))
            log.error("upkeep of %s failed: %s", document_id, exc)
        cursor = document_id
        checkpoint.save({"after": cursor})
    else:
        if not wrapped_any:  # the listing's end was reached: start the next cycle from the top
            cursor = None
            checkpoint.save({"after": None})
    return UpkeepReport(examined, tuple(renewed), tuple(augmented), tuple(failed), cursor)


def _upkeep_action(
    store: AipStore, document_id: str, policy: UpkeepPolicy, now: datetime
) -> tuple[str, str] | None:
    """("augment" | "renew", why) for a document that needs it, else None.

    Raises:
        SigningError (UnreadablePdfError), PackageNotFoundError, InvalidPackageError.
    """
    aip_id = store.resolve(document_id)
    manifest = store.manifest(aip_id)
    if manifest.signature.level == "B-T" and manifest.created_at <= now - policy.settle:
        return "augment", "B-T older than the settle delay"
    with store.open_pdf(aip_id) as stream:
        pdf = stream.read()
    facts = evidence_expiry(document_id, pdf)
    if facts.expires is None:
        raise UnreadablePdfError("no time-stamp or certificate expiry found")
    if facts.expires <= now + policy.horizon:
        return "renew", f"evidence expires {facts.expires.isoformat()}"
    return None


def sweep_due(disposal: Disposal, lease: Lease, *, proposed_by: str = "kluis-scheduler") -> str:
    """Propose the documents whose retention ended (one new proposal, or none when nothing
    new is due; documents already in an open proposal are not proposed again). Returns a
    one-line summary.

    Raises:
        LeaseLostError: checked after every candidate; nothing is proposed then.
        IndexUnavailableError, StorageUnavailableError.
    """
    lease.keep()
    result = disposal.sweep(proposed_by, progress=lambda _: lease.keep())
    proposal = result.proposal
    made = f"proposal {proposal.proposal_id}" if proposal is not None else "no proposal"
    return (
        f"{made}: {result.candidates} candidates, {result.already_proposed} already proposed, "
        f"{result.not_due} not due in storage"
    )


@dataclass(frozen=True)
class DisposalRunReport:
    executed: tuple[str, ...] = ()
    """Proposals executed (or resumed and finished) in this run."""
    certificates: tuple[str, ...] = ()
    destroyed: int = 0
    transferred: int = 0
    skipped: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    """(proposal id, why): retried at the next run."""


def execute_approved(
    disposal: Disposal, lease: Lease, *, executor: str = "kluis-scheduler"
) -> DisposalRunReport:
    """Execute every approved proposal, and resume every one whose execution was interrupted.

    Execution is resumable and idempotent (see :mod:`retention.execution`); the lease is
    checked after every batch. A proposal that fails (a lock appeared, signing failed) is
    reported and tried again next run; the others go on.

    Raises:
        LeaseLostError: the proposal in progress resumes at the next run (here or elsewhere).
        StorageUnavailableError.
    """
    executed: list[str] = []
    certificates: list[str] = []
    failed: list[tuple[str, str]] = []
    destroyed = transferred = skipped = 0
    pending = [s.proposal.proposal_id for s in disposal.statuses() if s.state in _EXECUTABLE]
    for proposal_id in pending:
        lease.keep()
        try:
            result = disposal.execute(proposal_id, executor, progress=lambda _: lease.keep())
        except (RetentionError, SigningError, ObjectLockedError) as exc:
            failed.append((proposal_id, str(exc)))
            log.error("disposal of proposal %s failed: %s", proposal_id, exc)
            continue
        executed.append(proposal_id)
        certificates.append(result.certificate_id)
        destroyed += result.destroyed
        transferred += result.transferred
        skipped += result.skipped
    return DisposalRunReport(
        tuple(executed), tuple(certificates), destroyed, transferred, skipped, tuple(failed)
    )


_EXECUTABLE = frozenset({"approved", "executing"})
