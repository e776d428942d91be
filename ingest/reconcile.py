"""Clean up what crashed ingests leave behind.

An ingest claims its reference before it writes any object of its package, and commits
the package by writing the root METS last. So after a crash:

* an uncommitted package whose claim is gone is garbage;
* an uncommitted package whose claim is older than ``grace`` belongs to an ingest that
  died (no ingest takes that long): both are removed, so the agency's retry can proceed;
* a committed package is never changed here, except that ``seal`` is re-run for packages
  whose claim is younger than ``reseal_window``: an ingest killed between its commit marker
  and the end of ``seal`` leaves files without the package's retention (``seal`` is
  idempotent and cheap when there is nothing to do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from archive.store import AipStore
from ingest.idempotency import ClaimLedger


@dataclass(frozen=True)
class IngestReconcileReport:
    discarded_packages: tuple[str, ...]
    released_claims: tuple[str, ...]
    sealed_packages: tuple[str, ...] = ()
    """Committed packages whose files needed the retention of their root METS."""


def reconcile_ingest(
    store: AipStore,
    ledger: ClaimLedger,
    *,
    grace: timedelta = timedelta(minutes=10),
    reseal_window: timedelta = timedelta(days=7),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IngestReconcileReport:
    """Remove leftovers of crashed ingests. Raises: ArchiveError (storage)."""
    now = clock()
    claims = {claim.aip_id: claim for claim in ledger.claims()}
    discarded: list[str] = []
    released: list[str] = []
    sealed: list[str] = []
    for aip_id, claim in claims.items():
        if store.is_committed(aip_id):
            if now - claim.claimed_at < reseal_window and store.seal(aip_id):
                sealed.append(aip_id)
            continue
        if now - claim.claimed_at < grace:
            continue
        store.discard_incomplete(aip_id)
        ledger.release(claim)
        discarded.append(aip_id)
        released.append(aip_id)
    for aip_id in list(store.incomplete()):
        if aip_id not in claims and aip_id not in discarded:
            store.discard_incomplete(aip_id)
            discarded.append(aip_id)
    return IngestReconcileReport(tuple(discarded), tuple(released), tuple(sealed))
