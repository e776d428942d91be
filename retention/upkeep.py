"""Signature upkeep as AIP versions: renew the evidence of a stored document and keep the
result as the document's next version.

A stored package never changes (see :mod:`archive.store`). Renewing a document's long-term
evidence (:func:`signing.renew` or :func:`signing.augment`: fresh revocation data and a
document time-stamp, as an incremental update) therefore gives a *new* AIP whose root METS
points to its predecessor; readers resolve a document id to its newest version.

The new package keeps the descriptive metadata, the original SHA-256, the PDF name and the
extracted text of its predecessor (the visible content is unchanged: the update only appends
a DSS and a time-stamp), carries the predecessor's PREMIS events plus two new ones, and
records the PAdES level the renewed bytes actually validate at.

PREMIS events appended (terms from the Library of Congress "eventType" vocabulary):

* ``digital signature generation``: the renewal itself. A document time-stamp is a signature
  over the whole document (ETSI EN 319 142-1); the vocabulary has no separate time-stamping
  term, and "digital signature validation" would misstate what was created.
* ``digital signature validation``: the check of the renewed bytes before they were stored.

Errors: :class:`RenewalConflictError` when a concurrent writer stored a newer version first,
:class:`RenewalRejectedError` when the renewed bytes do not validate; signing and archive
errors (``SigningError``, ``PackageNotFoundError``, ``StorageUnavailableError``...) pass
through unchanged.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from archive.errors import ObjectExistsError
from archive.model import Agent, AipManifest, PackageInput, PremisEvent
from archive.package import build_aip
from archive.store import AipStore
from retention.errors import RenewalConflictError, RenewalRejectedError
from signing.validation import ValidationReport, validate

__all__ = ["RENEWAL_EVENT_TYPE", "VALIDATION_EVENT_TYPE", "renew_document"]

RENEWAL_EVENT_TYPE = "digital signature generation"
VALIDATION_EVENT_TYPE = "digital signature validation"
SOFTWARE_AGENT = Agent("kluis", "Kluis digital archive", "software")


def renew_document(
    store: AipStore,
    document_id: str,
    *,
    renew: Callable[[bytes], bytes],
    trust_roots: Sequence[bytes],
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> str:
    """Renew the newest version of ``document_id`` and store the result as its next version.

    ``renew`` turns the stored PDF into renewed PDF bytes; the wiring passes e.g.
    ``lambda pdf: signing.renew(pdf, trust_roots=..., tsa_url=...)`` or ``signing.augment``.
    Returns the AIP id of the new version.

    Raises:
        PackageNotFoundError: no such document.
        RenewalRejectedError: the renewed bytes are not an append-only update of the stored
            PDF, or do not validate against ``trust_roots``; nothing was stored.
        RenewalConflictError: another writer stored a newer version first; nothing was
            stored (a claimed-but-unwritten version number is skipped by readers).
        SigningError: ``renew`` failed (e.g. the TSA is unreachable).
        ArchiveError: storage failed.
    """
    previous_id = store.resolve(document_id)
    previous = store.manifest(previous_id)
    with store.open_file(previous_id, previous.pdf_path, manifest=previous) as stream:
        old_pdf = stream.read()
    text = store.read_text(previous_id)

    new_pdf = renew(old_pdf)
    if not new_pdf.startswith(old_pdf) or len(new_pdf) == len(old_pdf):
        raise RenewalRejectedError(document_id, "not an incremental update of the stored PDF")
    report = validate(new_pdf, trust_roots=trust_roots)
    level = _sealed_level(report, previous)
    if not report.valid or level is None:
        raise RenewalRejectedError(document_id, "the renewed signatures do not validate")

    now = clock()
    stamps = [t.timestamp_at for t in report.document_timestamps if t.timestamp_at is not None]
    newest = max(stamps).isoformat() if stamps else "none"
    events = (
        *previous.events,
        PremisEvent(
            new_id(),
            RENEWAL_EVENT_TYPE,
            now,
            "success",
            f"PAdES evidence renewed on version {previous_id}: revocation data and a document "
            f"time-stamp added as an incremental update (newest time-stamp {newest})",
            (SOFTWARE_AGENT.identifier,),
        ),
        PremisEvent(
            new_id(),
            VALIDATION_EVENT_TYPE,
            now,
            "success",
            f"renewed PDF validates at PAdES {level}; "
            f"{len(report.document_timestamps)} document time-stamp(s)",
            (SOFTWARE_AGENT.identifier,),
        ),
    )
    meta = previous.metadata
    package = build_aip(
        PackageInput(
            aip_id=new_id(),
            metadata=meta,
            signed_pdf=new_pdf,
            original_sha256=previous.original_sha256,
            pdf_name=previous.pdf_path.rsplit("/", 1)[-1],
            text=text,
            signature=dataclasses.replace(previous.signature, level=level),
            created_at=now,
            events=events,
            agents=(Agent(meta.agency_id, meta.agency_id, "organization"), SOFTWARE_AGENT),
            previous_aip_id=previous_id,
        )
    )
    # The new version is locked as long as the document already is: its retention may have
    # been extended (retention records, an event date) beyond what the metadata recorded.
    retain = store.document_locked_until(document_id)
    if meta.retention_until is not None:
        recorded = datetime.combine(meta.retention_until, datetime.min.time(), UTC)
        retain = recorded if retain is None else max(retain, recorded)
    try:
        manifest, _ = store.commit_version(package, retain_until=retain)
    except ObjectExistsError as exc:
        raise RenewalConflictError(document_id, previous_id) from exc
    if store.legal_hold(previous_id):  # a held document is held in every version
        store.set_document_legal_hold(document_id, True)
    return manifest.aip_id


def _sealed_level(report: ValidationReport, previous: AipManifest) -> str | None:
    """The PAdES level of the archive's seal in ``report`` (matched by signer subject; the
    last signature when none matches), or None when that signature does not pass."""
    checks = [c for c in report.signatures if c.signer_subject == previous.signature.signer_subject]
    candidates = checks or list(report.signatures)
    if not candidates or not candidates[-1].passed:
        return None
    return candidates[-1].level
