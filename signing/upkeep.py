"""Long-term upkeep of sealed PDFs: augmentation to B-LT/B-LTA, archive time-stamp renewal,
and an expiry report.

These are job functions for the scheduler: each takes the stored bytes and returns *new*
bytes (stored bytes are never rewritten; the archive keeps the result as a new version).
Every change is an incremental update, so earlier revisions and signatures stay intact.

* :func:`augment` raises a B-T document to B-LT (DSS with certificates and revocation data
  for every signature and its time-stamp) or B-LTA (plus a document time-stamp). Run it
  after a grace period so revocation data post-dates the signature time-stamp (REPORT §2).
* :func:`renew` adds fresh revocation data for the newest time-stamp and a new document
  time-stamp, so the evidence outlives TSA and CA certificates (ETSI EN 319 142-1 LTA).
* :func:`evidence_expiry` / :func:`expiry_report` list documents whose newest time-stamp
  certificate or signer certificate chain expires within N days.

Like signing, these run ``asyncio.run``: do not call them from a running event loop.
Errors: :class:`~signing.errors.UnreadablePdfError` for input that cannot be parsed or has
no signature, :class:`~signing.errors.SignatureFailedError` for failures while augmenting.
"""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from asn1crypto import cms
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator import ValidationContext

from signing._archival import append_document_timestamp, append_validation_data
from signing.errors import SignatureFailedError, UnreadablePdfError
from signing.keys import load_root

__all__ = ["EvidenceExpiry", "augment", "evidence_expiry", "expiry_report", "renew"]

_TSA_TIMEOUT_S: Final = 10


def _utc_now() -> datetime:
    return datetime.now(UTC)


def augment(
    pdf: bytes,
    *,
    trust_roots: Sequence[bytes],
    tsa_url: str | None = None,
    level: Literal["B-LT", "B-LTA"] = "B-LTA",
    digest: str = "sha256",
    clock: Callable[[], datetime] = _utc_now,
) -> bytes:
    """Return ``pdf`` raised to ``level``: a DSS with validation data for every regular
    signature (and its signature time-stamp), then for B-LTA a document time-stamp.

    Every appended revision carries ``clock()`` (whole seconds) as its modification date
    in ``/Info`` and XMP alike, so a PDF/A document stays PDF/A (:mod:`signing._archival`).

    Raises:
        UnreadablePdfError: not a readable PDF, or no signature in it.
        SignatureFailedError: validation data or the time-stamp could not be obtained.
        ValueError: B-LTA without ``tsa_url``, or a bad trust root.
    """
    if level == "B-LTA" and not tsa_url:
        raise ValueError("B-LTA needs a tsa_url")
    roots = [load_root(i, der) for i, der in enumerate(trust_roots)]
    count = len(_reader(pdf).embedded_regular_signatures)
    if count == 0:
        raise UnreadablePdfError("the document has no signature to augment")
    tsa = tsa_url if level == "B-LTA" else None
    return _run(_augment(pdf, roots, count, tsa, digest, _modified_at(clock)))


def renew(
    pdf: bytes,
    *,
    trust_roots: Sequence[bytes],
    tsa_url: str,
    digest: str = "sha256",
    clock: Callable[[], datetime] = _utc_now,
) -> bytes:
    """Return ``pdf`` with fresh revocation data and a new document time-stamp.

    A document without a document time-stamp yet (B-T, B-LT) is augmented to B-LTA instead.

    Raises:
        as :func:`augment`.
    """
    roots = [load_root(i, der) for i, der in enumerate(trust_roots)]
    reader = _reader(pdf)
    if not reader.embedded_timestamp_signatures:
        return augment(pdf, trust_roots=trust_roots, tsa_url=tsa_url, digest=digest, clock=clock)
    return _run(_renew(pdf, roots, tsa_url, _modified_at(clock)))


def _modified_at(clock: Callable[[], datetime]) -> datetime:
    now = clock()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the clock returned a naive datetime")
    return now.astimezone(UTC).replace(microsecond=0)


def _reader(pdf: bytes) -> Any:
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        _ = reader.embedded_signatures
    except Exception as exc:  # hostile input makes parsers fail in arbitrary ways
        raise UnreadablePdfError(f"{type(exc).__name__}: {exc}") from exc
    return reader


def _run(coro: Any) -> bytes:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise RuntimeError("upkeep uses asyncio.run(); call it from a worker thread or process")
    try:
        result: bytes = asyncio.run(coro)
    except (UnreadablePdfError, SignatureFailedError):
        raise
    except Exception as exc:  # pyHanko, certvalidator, aiohttp: all foreign here
        raise SignatureFailedError(f"{type(exc).__name__}: {exc}") from exc
    return result


async def _augment(
    pdf: bytes,
    roots: list[Any],
    count: int,
    tsa_url: str | None,
    digest: str,
    modified_at: datetime,
) -> bytes:
    context = ValidationContext(trust_roots=roots, allow_fetching=True)
    out = io.BytesIO(pdf)
    try:
        for index in range(count):  # one DSS revision per signature, as pyHanko writes it
            await append_validation_data(
                out,
                context,
                modified_at=modified_at,
                pick=functools.partial(_regular_signature, index=index),
            )
        if tsa_url is not None:
            await append_document_timestamp(
                out,
                HTTPTimeStamper(tsa_url, timeout=_TSA_TIMEOUT_S),
                context,
                modified_at=modified_at,
                digest=digest,
            )
        return out.getvalue()
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]


def _regular_signature(reader: PdfFileReader, *, index: int) -> Any:
    return reader.embedded_regular_signatures[index]


async def _renew(pdf: bytes, roots: list[Any], tsa_url: str, modified_at: datetime) -> bytes:
    """Validation data for the newest document time-stamp, then a new time-stamp over it
    (pyHanko's ``update_archival_timestamp_chain``, through our writer)."""
    context = ValidationContext(trust_roots=roots, allow_fetching=True)
    out = io.BytesIO(pdf)
    try:
        newest = PdfFileReader(out, strict=False).embedded_timestamp_signatures[-1]
        await append_document_timestamp(
            out,
            HTTPTimeStamper(tsa_url, timeout=_TSA_TIMEOUT_S),
            context,
            modified_at=modified_at,
            digest=newest.md_algorithm,  # keep the chain's algorithm, as pyHanko does
            validate_first=lambda reader: reader.embedded_timestamp_signatures[-1],
        )
        return out.getvalue()
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class EvidenceExpiry:
    """When the evidence in one signed PDF stops being verifiable without renewal."""

    document: str
    newest_timestamp_at: datetime | None
    """genTime of the newest time-stamp (document or signature time-stamp), if any."""
    timestamp_expires: datetime | None
    """notAfter of the TSA certificate of that newest time-stamp."""
    certificate_expires: datetime | None
    """Earliest notAfter among the signer certificates and the certificates in the DSS."""

    @property
    def expires(self) -> datetime | None:
        """What needs renewal first: the newest time-stamp protects everything before it,
        so once one exists its TSA certificate decides; otherwise the certificates do."""
        if self.timestamp_expires is not None:
            return self.timestamp_expires
        return self.certificate_expires

    def to_dict(self) -> dict[str, object]:
        return {
            "document": self.document,
            "newest_timestamp_at": _iso(self.newest_timestamp_at),
            "timestamp_expires": _iso(self.timestamp_expires),
            "certificate_expires": _iso(self.certificate_expires),
            "expires": _iso(self.expires),
        }


def evidence_expiry(document: str, pdf: bytes) -> EvidenceExpiry:
    """Expiry facts of one signed PDF (offline, no validation).

    Raises:
        UnreadablePdfError: the document cannot be parsed.
    """
    reader = _reader(pdf)
    try:
        stamps: list[tuple[datetime, datetime]] = []  # (genTime, TSA notAfter)
        cert_expiry: list[datetime] = []
        for sig in reader.embedded_regular_signatures:
            cert_expiry.append(sig.signer_cert["tbs_certificate"]["validity"]["not_after"].native)
            token = _signature_timestamp_token(sig.signer_info)
            if token is not None:
                stamps.append(_token_times(token["content"]))
        for ts in reader.embedded_timestamp_signatures:
            stamps.append(_token_times(ts.signed_data))
    except Exception as exc:
        raise UnreadablePdfError(f"{type(exc).__name__}: {exc}") from exc
    newest = max(stamps, default=None)
    return EvidenceExpiry(
        document=document,
        newest_timestamp_at=newest[0] if newest else None,
        timestamp_expires=newest[1] if newest else None,
        certificate_expires=min(cert_expiry, default=None),
    )


def expiry_report(
    documents: Iterable[tuple[str, bytes]], *, within: timedelta, now: datetime
) -> list[EvidenceExpiry]:
    """The documents whose evidence expires before ``now + within``, soonest first.

    Unreadable documents are reported with no dates at all (they need a human).
    """
    horizon = now + within
    due: list[EvidenceExpiry] = []
    for name, pdf in documents:
        try:
            facts = evidence_expiry(name, pdf)
        except UnreadablePdfError:
            due.append(EvidenceExpiry(name, None, None, None))
            continue
        if facts.expires is None or facts.expires <= horizon:
            due.append(facts)
    return sorted(due, key=lambda e: (e.expires is not None, e.expires or now))


def _signature_timestamp_token(signer_info: Any) -> Any:
    attrs = signer_info["unsigned_attrs"]
    if attrs.native is None:
        return None
    for attr in attrs:
        if attr["type"].native == "signature_time_stamp_token":
            return attr["values"][0]
    return None


def _token_times(signed: cms.SignedData) -> tuple[datetime, datetime]:
    gen_time: datetime = signed["encap_content_info"]["content"].parsed["gen_time"].native
    sid = signed["signer_infos"][0]["sid"]
    for choice in signed["certificates"]:
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            match = (
                cert.serial_number == sid.chosen["serial_number"].native
                and cert.issuer == sid.chosen["issuer"]
            )
        else:
            match = cert.key_identifier == sid.chosen.native
        if match:
            not_after: datetime = cert["tbs_certificate"]["validity"]["not_after"].native
            return gen_time, not_after
    raise ValueError("time-stamp token without its TSA certificate")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
