"""Disposal: sweep -> proposal -> review -> approval by another archivist -> execution ->
signed destruction certificate. :class:`Disposal` ties the steps to one set of backends.

The steps live in their own modules: :mod:`retention.sweep` (find and propose),
:mod:`retention.four_eyes` (review, approve, reject), :mod:`retention.execution` (re-check
against storage, export, delete, journal), :mod:`retention.certificate` (the signed
evidence), :mod:`retention.transfer` (the export for the receiving archive) and
:mod:`retention.proposals` (the records in storage). This class only supplies their shared
dependencies, so the API, the CLI and the scheduler call disposal the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime

from archive.store import AipStore
from retention import four_eyes
from retention.certificate import StoredCertificate, read_certificate, verify_certificate
from retention.execution import BATCH_ITEMS, ExecutionResult, execute
from retention.proposals import ProposalItem, ProposalStatus, ProposalStore
from retention.state import RetentionFacts
from retention.sweep import SweepResult, sweep
from search.base import Index
from signing.evidence import EvidenceCheck, sign_detached
from signing.keys import KeySource

__all__ = ["Disposal"]


class Disposal:
    """Every disposal step over one storage, index, set of retention facts and signing key."""

    def __init__(
        self,
        *,
        store: AipStore,
        proposals: ProposalStore,
        index: Index,
        facts: RetentionFacts,
        keys: KeySource,
        tsa_url: str | None,
        trust_roots: Sequence[bytes],
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
    ) -> None:
        self.store = store
        self.proposals = proposals
        self._index = index
        self._facts = facts
        self._keys = keys
        self._tsa_url = tsa_url
        self._trust_roots = tuple(trust_roots)
        self._clock = clock
        self._new_id = new_id

    def sweep(
        self,
        proposed_by: str,
        *,
        today: date | None = None,
        confirm: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> SweepResult:
        """Raises: IndexUnavailableError, StorageUnavailableError."""
        return sweep(
            self._index,
            self._facts,
            today or self._clock().date(),
            proposals=self.proposals,
            proposed_by=proposed_by,
            clock=self._clock,
            new_id=self._new_id,
            confirm=confirm,
            progress=progress,
        )

    def statuses(self) -> Iterator[ProposalStatus]:
        return self.proposals.statuses()

    def status(self, proposal_id: str) -> ProposalStatus:
        """Raises: ProposalNotFoundError."""
        return self.proposals.status(proposal_id)

    def items(self, proposal_id: str) -> Iterator[ProposalItem]:
        """Raises: ProposalNotFoundError."""
        return self.proposals.items(proposal_id)

    def review(self, proposal_id: str, archivist: str, note: str = "") -> ProposalStatus:
        """Raises: see :func:`retention.four_eyes.review`."""
        return four_eyes.review(
            self.proposals, proposal_id, archivist, clock=self._clock, new_id=self._new_id,
            note=note,
        )  # fmt: skip

    def approve(self, proposal_id: str, archivist: str, note: str = "") -> ProposalStatus:
        """Raises: see :func:`retention.four_eyes.approve`."""
        return four_eyes.approve(
            self.proposals, proposal_id, archivist, clock=self._clock, new_id=self._new_id,
            note=note,
        )  # fmt: skip

    def reject(self, proposal_id: str, archivist: str, note: str = "") -> ProposalStatus:
        """Raises: see :func:`retention.four_eyes.reject`."""
        return four_eyes.reject(
            self.proposals, proposal_id, archivist, clock=self._clock, new_id=self._new_id,
            note=note,
        )  # fmt: skip

    def execute(
        self,
        proposal_id: str,
        executor: str,
        *,
        progress: Callable[[int], None] | None = None,
        batch_items: int = BATCH_ITEMS,
    ) -> ExecutionResult:
        """Raises: see :func:`retention.execution.execute`."""
        return execute(
            self.proposals,
            proposal_id,
            facts=self._facts,
            index=self._index,
            versions=self.store.versions,
            sign=self.sign,
            executor=executor,
            clock=self._clock,
            new_id=self._new_id,
            progress=progress,
            batch_items=batch_items,
        )

    def sign(self, data: bytes) -> bytes:
        """Detached CAdES signature (time-stamped when a TSA is configured). Signing time
        and time-stamp are real time, never the injected clock: they are physical facts.

        Raises: KeySourceError, SignatureFailedError.
        """
        return sign_detached(data, self._keys, tsa_url=self._tsa_url)

    def certificate(self, certificate_id: str) -> StoredCertificate:
        """Raises: CertificateNotFoundError, StorageUnavailableError."""
        return read_certificate(self.proposals.storage, certificate_id)

    def verify(self, certificate: StoredCertificate) -> EvidenceCheck:
        return verify_certificate(certificate, trust_roots=self._trust_roots)
