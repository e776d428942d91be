"""Validate the signatures in a PDF and report them as plain, JSON-ready values.

:func:`validate` runs pyHanko's signature validation for every regular (non-timestamp)
signature and translates each status into a :class:`SignatureCheck`: integrity, trust,
coverage, the ETSI EN 319 102-1 indication and the PAdES level that was reached. No pyHanko
or asn1crypto type leaves this module.

Scope (walking skeleton): trust is evaluated *now* against the given roots only (no
operating-system trust list), without fetching and with soft-fail revocation checking, so
revocation is not verified for certificates without embedded revocation data. Levels above
B-T (DSS and document time-stamps: B-LT, B-LTA) are not detected yet and are reported as
B-T at most.

Like signing, validation runs ``asyncio.run``: do not call it from a running event loop.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from signing.errors import UnreadablePdfError

__all__ = ["SignatureCheck", "ValidationReport", "validate"]

TOTAL_PASSED: Final = "TOTAL-PASSED"
INDETERMINATE: Final = "INDETERMINATE"
TOTAL_FAILED: Final = "TOTAL-FAILED"

_PADES_SUBFILTER: Final = "/ETSI.CAdES.detached"

_COVERAGE: Final = {
    SignatureCoverageLevel.ENTIRE_FILE: "entire-file",
    SignatureCoverageLevel.ENTIRE_REVISION: "entire-revision",
    SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START: "partial",
    SignatureCoverageLevel.UNCLEAR: "unclear",
}
_MODIFICATION: Final = {
    ModificationLevel.NONE: "none",
    ModificationLevel.LTA_UPDATES: "lta-updates",
    ModificationLevel.FORM_FILLING: "form-filling",
    ModificationLevel.ANNOTATIONS: "annotations",
    ModificationLevel.OTHER: "other",
}

# Seals and personal signatures: accept either key usage (pyHanko's default is
# nonRepudiation only).
_KEY_USAGE: Final = KeyUsageConstraints(
    key_usage=frozenset({"non_repudiation", "digital_signature"}), match_all_key_usages=False
)


@dataclass(frozen=True)
class SignatureCheck:
    """Validation outcome of one signature."""

    field_name: str
    signer_subject: str
    """RFC 4514 subject of the signing certificate ('' if it could not be read)."""
    signed_at: datetime | None
    """Signing time claimed by the signer (not proven; see ``timestamp_at``)."""
    intact: bool
    """The signed bytes hash to the digest in the signature."""
    valid: bool
    """The cryptographic signature over the signed attributes verifies."""
    trusted: bool
    """The signing certificate chains to one of the trust roots."""
    coverage: str
    """"entire-file", "entire-revision", "partial" or "unclear"."""
    modification_level: str
    """Changes after signing: "none", "lta-updates", "form-filling", "annotations",
    "other", or "unknown"."""
    level: str | None
    """PAdES baseline level reached ("B-B", "B-T") or None."""
    timestamp_at: datetime | None
    """Time in the signature time-stamp token, if any."""
    indication: str
    """ETSI EN 319 102-1 main indication: TOTAL-PASSED, INDETERMINATE or TOTAL-FAILED."""
    sub_indication: str | None
    """ETSI sub-indication (e.g. HASH_FAILURE, NO_CERTIFICATE_CHAIN_FOUND), None if passed."""

    @property
    def passed(self) -> bool:
        return self.indication == TOTAL_PASSED

    def to_dict(self) -> dict[str, object]:
        return {
            "field_name": self.field_name,
            "signer_subject": self.signer_subject,
            "signed_at": _iso(self.signed_at),
            "intact": self.intact,
            "valid": self.valid,
            "trusted": self.trusted,
            "coverage": self.coverage,
            "modification_level": self.modification_level,
            "level": self.level,
            "timestamp_at": _iso(self.timestamp_at),
            "indication": self.indication,
            "sub_indication": self.sub_indication,
        }


@dataclass(frozen=True)
class ValidationReport:
    """All regular signatures of a document, in signing order."""

    signatures: tuple[SignatureCheck, ...]

    @property
    def valid(self) -> bool:
        """At least one signature, and every signature intact, valid, trusted and passed.

        "Passed" also rules out disallowed changes after signing, which intact/valid/trusted
        alone do not.
        """
        return bool(self.signatures) and all(
            s.intact and s.valid and s.trusted and s.passed for s in self.signatures
        )

    def to_dict(self) -> dict[str, object]:
        return {"valid": self.valid, "signatures": [s.to_dict() for s in self.signatures]}


def validate(pdf: bytes, *, trust_roots: Sequence[bytes]) -> ValidationReport:
    """Validate every regular signature in ``pdf`` against ``trust_roots`` (DER).

    A signature that cannot be evaluated at all is reported as TOTAL-FAILED /
    FORMAT_FAILURE rather than raised.

    Raises:
        UnreadablePdfError: the document cannot be parsed or its signatures located.
        ValueError: a trust root is not a DER X.509 certificate.
        RuntimeError: when called from a thread with a running asyncio event loop.
    """
    roots = [_load_root(index, der) for index, der in enumerate(trust_roots)]
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = list(reader.embedded_regular_signatures)
    except Exception as exc:  # hostile input makes parsers fail in arbitrary ways
        raise UnreadablePdfError(f"{type(exc).__name__}: {exc}") from exc
    if not embedded:
        return ValidationReport(signatures=())
    return ValidationReport(signatures=asyncio.run(_check_all(embedded, roots)))


async def _check_all(
    embedded: list[Any], roots: list[asn1_x509.Certificate]
) -> tuple[SignatureCheck, ...]:
    # One context for the whole document: the cached paths are reused across signatures.
    context = ValidationContext(
        trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail"
    )
    try:
        return tuple([await _check(sig, context) for sig in embedded])
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]


async def _check(sig: Any, context: Any) -> SignatureCheck:
    try:
        field_name = str(sig.field_name)
    except Exception:  # a field without /T is malformed but must not hide the others
        field_name = ""
    try:
        status = await async_validate_pdf_signature(
            sig, signer_validation_context=context, key_usage_settings=_KEY_USAGE
        )
    except Exception as exc:  # malformed CMS, unsupported algorithm, ...
        sub = "FORMAT_FAILURE"
        if isinstance(exc, SignatureValidationError) and exc.ades_subindication is not None:
            sub = exc.ades_subindication.standard_name
        return SignatureCheck(
            field_name=field_name,
            signer_subject=_subject_or_empty(sig),
            signed_at=None,
            intact=False,
            valid=False,
            trusted=False,
            coverage="unclear",
            modification_level="unknown",
            level=None,
            timestamp_at=None,
            indication=TOTAL_FAILED,
            sub_indication=sub,
        )
    indication, sub_indication = _indication(status)
    ts = status.timestamp_validity
    return SignatureCheck(
        field_name=field_name,
        signer_subject=_subject(status.signing_cert),
        signed_at=status.signer_reported_dt,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        coverage=_coverage(status.coverage),
        modification_level=_modification(status.modification_level),
        level=_pades_level(sig, status) if indication == TOTAL_PASSED else None,
        timestamp_at=ts.timestamp if ts is not None else None,
        indication=indication,
        sub_indication=sub_indication,
    )


def _indication(status: Any) -> tuple[str, str | None]:
    """Map a pyHanko PdfSignatureStatus onto an EN 319 102-1 indication."""
    if not status.intact:
        return TOTAL_FAILED, "HASH_FAILURE"
    if not status.valid:
        return TOTAL_FAILED, "SIG_CRYPTO_FAILURE"
    if status.revoked:
        return TOTAL_FAILED, "REVOKED"
    if not status.trusted:
        problem = status.trust_problem_indic
        return INDETERMINATE, (
            problem.standard_name if problem is not None else "NO_CERTIFICATE_CHAIN_FOUND"
        )
    ts = status.timestamp_validity
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        problem = ts.trust_problem_indic
        return INDETERMINATE, problem.standard_name if problem is not None else "GENERIC"
    if status.coverage is None or status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        return TOTAL_FAILED, "FORMAT_FAILURE"
    if not (status.docmdp_ok or status.modification_level is None):
        # Changes after signing beyond what the signature allows (e.g. page content).
        return TOTAL_FAILED, "FORMAT_FAILURE"
    if not status.bottom_line:  # seed-value constraints
        return INDETERMINATE, "SIG_CONSTRAINTS_FAILURE"
    return TOTAL_PASSED, None


def _pades_level(sig: Any, status: Any) -> str | None:
    """REPORT §2: B-B = PAdES subfilter + signing-certificate-v2 + valid; B-T adds a
    trusted signature time-stamp."""
    subfilter = sig.sig_object.get("/SubFilter")
    signed_attrs = {attr["type"].native for attr in sig.signer_info["signed_attrs"]}
    if str(subfilter) != _PADES_SUBFILTER or "signing_certificate_v2" not in signed_attrs:
        return None
    ts = status.timestamp_validity
    if ts is not None and ts.intact and ts.valid and ts.trusted:
        return "B-T"
    return "B-B"


def _coverage(level: SignatureCoverageLevel | None) -> str:
    return "unclear" if level is None else _COVERAGE.get(level, "unclear")


def _modification(level: ModificationLevel | None) -> str:
    return "unknown" if level is None else _MODIFICATION.get(level, "unknown")


def _load_root(index: int, der: bytes) -> asn1_x509.Certificate:
    try:
        x509.load_der_x509_certificate(der)  # strict parse first; asn1crypto is lazy
        return asn1_x509.Certificate.load(der)
    except ValueError as exc:
        raise ValueError(f"trust root #{index} is not a DER X.509 certificate") from exc


def _subject(cert: asn1_x509.Certificate) -> str:
    return x509.load_der_x509_certificate(cert.dump()).subject.rfc4514_string()


def _subject_or_empty(sig: Any) -> str:
    try:
        return _subject(sig.signer_cert)
    except Exception:  # the certificate itself may be what is broken
        return ""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
