"""Clean up what crashed ingests leave behind: finish what can be finished, remove the rest.

An ingest claims its reference before it writes any object of its package, and commits
the package by writing the root METS last. A package with a retention has its files written
*under* that retention, after a commit intent (:mod:`archive.commit_intent`) that holds the
root METS and those files' bytes. So after a crash:

* an uncommitted package with a commit intent is *finished* (:meth:`AipStore.complete`: the
  missing files and the root METS are written from the intent) once its claim is older than
  ``grace``; its claim stays, so the agency's retry gets the receipt of this package. Its
  files may be locked for years, so removing it is not an option;
* an uncommitted package without an intent (nothing locked) whose claim is gone is garbage;
* an uncommitted package without an intent whose claim is older than ``grace`` belongs to
  an ingest that died (no ingest takes that long): both are removed, so the agency's retry
  can proceed;
* a committed package is never changed here, except that ``seal`` is re-run for packages
  whose claim is younger than ``reseal_window`` (an ingest killed between its commit marker
  and the end of ``seal`` leaves large files without the package's retention; ``seal`` is
  idempotent and cheap when there is nothing to do), and a leftover intent is deleted;
* a commit killed before it published anything leaves only hidden bytes (fs: the staging
  copy of the package directory); they are removed once older than ``grace``.

A package whose intent cannot finish it (damaged, or a file missing without a copy in it) is
reported in ``stuck_packages`` and left as it is for an archivist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from archive.errors import InvalidPackageError, ObjectLockedError
from archive.store import AipStore
from ingest.idempotency import ClaimLedger


@dataclass(frozen=True)
class IngestReconcileReport:
    discarded_packages: tuple[str, ...]
    released_claims: tuple[str, ...]
    sealed_packages: tuple[str, ...] = ()
    """Committed packages whose files needed the retention of their root METS."""
    completed_packages: tuple[str, ...] = ()
    """Interrupted commits finished from their commit intent."""
    stuck_packages: tuple[str, ...] = ()
    """Interrupted commits that could neither be finished nor removed (see the log)."""
    removed_leftovers: int = 0
    """Hidden staging copies of killed commits removed (older than ``grace``)."""


def reconcile_ingest(
    store: AipStore,
    ledger: ClaimLedger,
    *,
    grace: timedelta = timedelta(minutes=10),
    reseal_window: timedelta = timedelta(days=7),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IngestReconcileReport:
    """Finish or remove leftovers of crashed ingests. Raises: ArchiveError (storage)."""
    now = clock()
    claims = {claim.aip_id: claim for claim in ledger.claims()}
    discarded: list[str] = []
    released: list[str] = []
    sealed: list[str] = []
    completed: list[str] = []
    stuck: list[str] = []

    def finish(aip_id: str, written_before: datetime | None = None) -> bool:
        """True when the package is committed now, or must stay as it is."""
        try:
            if store.complete(aip_id, written_before=written_before):
                completed.append(aip_id)
                return True
        except InvalidPackageError:
            stuck.append(aip_id)
            return True
        return store.is_committed(aip_id)

    for aip_id, claim in claims.items():
        if store.is_committed(aip_id):
            if now - claim.claimed_at < reseal_window and store.seal(aip_id):
                sealed.append(aip_id)
            continue
        if ledger.disposed(aip_id):
            continue  # destroyed under the selection list: its claim answers retries "gone"
        if now - claim.claimed_at < grace or finish(aip_id):
            continue
        store.discard_incomplete(aip_id)
        ledger.release(claim)
        discarded.append(aip_id)
        released.append(aip_id)
    # Intents not handled above: leftovers of committed packages (deleted), those of
    # unclaimed commits (new AIP versions, which a version claim names) older than ``grace``
    # (finished), and those whose retention has ended (discarded: nothing is locked).
    pending = set()
    for aip_id in list(store.commit_intents()):
        if aip_id in completed or aip_id in stuck or aip_id in discarded:
            continue
        if finish(aip_id, written_before=now - grace) or aip_id in claims:
            continue
        try:
            store.discard_incomplete(aip_id)
            discarded.append(aip_id)
        except ObjectLockedError:  # its writer may still be running: finished after grace
            pending.add(aip_id)
    for aip_id in list(store.incomplete()):
        if aip_id in claims or aip_id in discarded or aip_id in pending or aip_id in stuck:
            continue
        store.discard_incomplete(aip_id)
        discarded.append(aip_id)
    leftovers = store.remove_write_leftovers(now - grace)
    return IngestReconcileReport(
        tuple(discarded),
        tuple(released),
        tuple(sealed),
        tuple(completed),
        tuple(stuck),
        leftovers,
    )
