"""How the API runs a deposit: ingest it, then record it in the audit trail.

A deposit is :meth:`ingest.pipeline.Ingestor.ingest` followed, when it created a package, by
the deposit's audit record (``audit/`` only, for archivists). The record is best effort: the
package is durable before it is written and carries its own PREMIS ingestion event, so a
failure is logged, never answered. Both steps run together wherever the deposit computes:
in a thread of the API process (:class:`InThreadDeposits`, ``ingest_processes`` 0), or in an
ingest process (:class:`kluis.api.ingest_pool.IngestPool`). In the pool the API process only
parses the request and hands the deposit over: the record's JSON and its two fsyncs run in
the single-threaded ingest process, not in the process whose GIL also serves the event loop.

Both kinds offer the deposit blocking (for handlers running in a thread, such as the batch)
and awaitable (for ``async`` handlers, without a hop through the thread pool when the
pool computes it).
"""

from __future__ import annotations

import logging
from typing import Protocol

from fastapi.concurrency import run_in_threadpool

from ingest.owners import parse_owner
from ingest.pipeline import Ingestor, IngestResult
from ingest.submission import Submission
from kluis.audit import AuditLog
from search.projection import OwnerKeyer

log = logging.getLogger("kluis.api")


class Deposits(Protocol):
    """Runs deposits: archive one document (or replay its receipt) and record it."""

    def run(self, submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult:
        """Blocking. Raises what :meth:`Ingestor.ingest` raises (StorageUnavailableError
        too when the process computing it died)."""
        ...

    async def run_async(
        self, submission: Submission, pdf: bytes, client_id: str | None
    ) -> IngestResult:
        """As :meth:`run`, awaitable: the event loop is never blocked."""
        ...


def deposit(
    ingestor: Ingestor,
    audit: AuditLog,
    keyer: OwnerKeyer,
    submission: Submission,
    pdf: bytes,
    client_id: str | None,
) -> IngestResult:
    """Ingest, then (only when a package was created) write the deposit's audit record.

    Raises:
        What :meth:`Ingestor.ingest` raises; never the audit record's failure.
    """
    result = ingestor.ingest(submission, pdf)
    if result.created:
        try:
            audit.record(
                action="write",
                document_id=result.receipt.aip_id,
                actor_role="agency",
                actor=submission.agency_id,
                client_id=client_id,
                # Valid: the ingest accepted it.
                owner_key=keyer.key(parse_owner(submission.owner).id),
                owner_visible=False,
            )
        except Exception:
            # The deposit is durable and carries its own PREMIS ingestion event.
            log.warning("audit record of a deposit failed", exc_info=True)
    return result


class InThreadDeposits:
    """Deposits computed in the calling thread of this process (``ingest_processes`` 0)."""

    def __init__(self, ingestor: Ingestor, audit: AuditLog, keyer: OwnerKeyer) -> None:
        self._ingestor = ingestor
        self._audit = audit
        self._keyer = keyer

    def run(self, submission: Submission, pdf: bytes, client_id: str | None) -> IngestResult:
        return deposit(self._ingestor, self._audit, self._keyer, submission, pdf, client_id)

    async def run_async(
        self, submission: Submission, pdf: bytes, client_id: str | None
    ) -> IngestResult:
        return await run_in_threadpool(self.run, submission, pdf, client_id)
