"""The ingest pipeline: validate -> sign -> package -> claim -> store -> index -> receipt.

Order is the guarantee. Everything before the claim is free of side effects, so bad input
changes nothing. The receipt is returned only after the package's root METS (its commit
marker) is durably stored. Indexing follows the store: if it fails, the package is still
acknowledged and reconcile/reindex makes it visible, because storage is the truth.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from archive.errors import ObjectExistsError, PackageNotFoundError
from archive.model import Agent, AipManifest, PackageInput, PremisEvent, SignatureInfo
from archive.package import build_aip
from archive.store import AipStore
from ingest.errors import (
    DocumentDisposedError,
    FieldProblem,
    IdempotencyConflictError,
    IngestInProgressError,
    InvalidSubmissionError,
)
from ingest.idempotency import Claim, ClaimLedger
from ingest.pdfcheck import inspect_pdf
from ingest.receipt import Receipt
from ingest.submission import RetentionRule, Submission, validate_submission
from search.base import Index
from search.errors import SearchError
from search.projection import OwnerKeyer, project, project_record
from search.reindex import PackageSource
from signing.errors import UnreadablePdfError
from signing.pades import SignedPdf

log = logging.getLogger(__name__)

SOFTWARE_AGENT = Agent("kluis", "Kluis digital archive", "software")


class DocumentSigner(Protocol):
    def sign(self, pdf: bytes) -> SignedPdf: ...


@dataclass(frozen=True)
class IngestResult:
    receipt: Receipt
    created: bool
    """False when an earlier ingest of the same reference and bytes was replayed."""


@dataclass(frozen=True)
class IngestLimits:
    max_pdf_bytes: int = 50 * 1024 * 1024
    wait_for_concurrent: float = 5.0
    """How long a retry waits for a concurrent ingest of the same reference to commit."""


class Ingestor:
    """Ingests one document at a time; safe to call from several threads and processes."""

    def __init__(
        self,
        *,
        signer: DocumentSigner,
        store: AipStore,
        ledger: ClaimLedger,
        index: Index,
        keyer: OwnerKeyer,
        known_types: Collection[str],
        retention: RetentionRule,
        limits: IngestLimits | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        source: PackageSource | None = None,
    ) -> None:
        """``source`` projects stored documents for :meth:`index_existing` (default: the
        store itself; the wiring passes one that adds holds and recorded retention ends)."""
        self._signer = signer
        self._store = store
        self._ledger = ledger
        self._index = index
        self._keyer = keyer
        self._known_types = known_types
        self._retention = retention
        self._limits = limits or IngestLimits()
        self._clock = clock
        self._new_id = new_id
        self._source: PackageSource = source or store

    def ingest(self, submission: Submission, pdf: bytes) -> IngestResult:
        """Archive one document, or replay the receipt of an earlier identical ingest.

        Raises:
            InvalidSubmissionError: bad metadata or PDF; nothing was stored.
            IdempotencyConflictError: the reference was used for other bytes.
            IngestInProgressError: a concurrent ingest of the reference is not done yet.
            ArchiveError: storage failed (StorageUnavailableError: retry later).
        """
        now = self._clock()
        metadata = validate_submission(
            submission, known_types=self._known_types, retention=self._retention, today=now.date()
        )
        facts = inspect_pdf(pdf, max_bytes=self._limits.max_pdf_bytes)
        submitted_sha256 = hashlib.sha256(pdf).hexdigest()

        earlier = self._ledger.find(metadata.agency_id, metadata.agency_ref)
        if earlier is not None:
            return IngestResult(self._replay(earlier, submitted_sha256), created=False)

        signed = self._sign(pdf)
        aip_id = self._new_id()
        package = build_aip(
            PackageInput(
                aip_id=aip_id,
                metadata=metadata,
                signed_pdf=signed.pdf,
                original_sha256=submitted_sha256,
                pdf_name=submission.file_name,
                text=facts.text,
                signature=SignatureInfo(
                    level=signed.level,
                    signed_at=signed.signed_at,
                    signer_subject=signed.signer_subject,
                    certificate_sha256=signed.certificate_sha256,
                ),
                created_at=now,
                events=self._events(metadata.agency_id, submitted_sha256, signed, now),
                agents=(
                    Agent(metadata.agency_id, metadata.agency_id, "organization"),
                    SOFTWARE_AGENT,
                ),
            )
        )
        claim = Claim(metadata.agency_id, metadata.agency_ref, aip_id, submitted_sha256, now)
        try:
            self._ledger.create(claim)
        except ObjectExistsError:
            winner = self._ledger.find(metadata.agency_id, metadata.agency_ref)
            if winner is None:  # released in between: the other ingest failed; let caller retry
                raise IngestInProgressError(metadata.agency_id, metadata.agency_ref, 1) from None
            return IngestResult(self._replay(winner, submitted_sha256), created=False)
        try:
            # The lock is the computed end, or its lower bound while an event date is
            # pending (the rule's period after the issue date).
            lock = self._retention(metadata.document_type, metadata.issued_on).lock_until
            retain = None
            if lock is not None:
                retain = datetime.combine(lock, datetime.min.time(), UTC)
            manifest = self._store.commit(package, retain_until=retain)
        except BaseException:
            self._abandon_quietly(claim)
            raise
        self._index_quietly(manifest, facts.text)
        return IngestResult(Receipt.from_manifest(manifest), created=True)

    def _sign(self, pdf: bytes) -> SignedPdf:
        try:
            return self._signer.sign(pdf)
        except UnreadablePdfError as exc:
            raise InvalidSubmissionError(
                [FieldProblem("file", f"the PDF cannot be signed: {exc.reason}")]
            ) from exc

    def _events(
        self, agency_id: str, sha256: str, signed: SignedPdf, now: datetime
    ) -> tuple[PremisEvent, ...]:
        return (
            PremisEvent(
                self._new_id(),
                "message digest calculation",
                now,
                "success",
                f"SHA-256 of the submitted PDF: {sha256}",
                (SOFTWARE_AGENT.identifier,),
            ),
            PremisEvent(
                self._new_id(),
                "digital signature generation",
                signed.signed_at,
                "success",
                f"PAdES {signed.level} seal by {signed.signer_subject}",
                (SOFTWARE_AGENT.identifier,),
            ),
            PremisEvent(
                self._new_id(),
                "ingestion",
                now,
                "success",
                f"submitted by {agency_id}",
                (agency_id, SOFTWARE_AGENT.identifier),
            ),
        )

    def _replay(self, claim: Claim, submitted_sha256: str) -> Receipt:
        if claim.submitted_sha256 != submitted_sha256:
            raise IdempotencyConflictError(claim.agency_id, claim.agency_ref, claim.aip_id)
        deadline = time.monotonic() + self._limits.wait_for_concurrent
        while True:
            try:
                return Receipt.from_manifest(self._store.manifest(claim.aip_id))
            except PackageNotFoundError:
                if self._ledger.disposed(claim.aip_id):
                    raise DocumentDisposedError(
                        claim.agency_id, claim.agency_ref, claim.aip_id
                    ) from None
                if time.monotonic() >= deadline:
                    raise IngestInProgressError(claim.agency_id, claim.agency_ref, 5) from None
                time.sleep(0.05)

    def _abandon_quietly(self, claim: Claim) -> None:
        # The commit failed, perhaps after its marker was written (a timeout): release the
        # claim only when storage confirms the package is not committed, else a retry could
        # archive the document twice. Whatever cannot be cleaned now, reconcile cleans.
        try:
            if not self._store.is_committed(claim.aip_id):
                self._store.discard_incomplete(claim.aip_id)
                self._ledger.release(claim)
        except Exception:
            log.warning("could not clean up package %s; reconcile will", claim.aip_id)

    def _index_quietly(self, manifest: AipManifest, text: str) -> None:
        try:
            self._index.submit([project(manifest, text, self._keyer)])
        except SearchError as exc:
            log.warning(
                "package %s stored but not indexed (%s); reconcile will", manifest.aip_id, exc
            )

    def index_existing(self, document_id: str) -> None:
        """(Re)index one committed document from storage, with its newest version's content."""
        self._index.submit([project_record(self._source.index_record(document_id), self._keyer)])
