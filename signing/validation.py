"""Validate the signatures in a PDF and report them as plain, JSON-ready values.

:func:`validate` runs pyHanko's signature validation for every regular (non-timestamp)
signature and translates each status into a :class:`SignatureCheck`: integrity, trust,
coverage, the ETSI EN 319 102-1 indication and the PAdES level that was reached. No pyHanko
or asn1crypto type leaves this module.

Two verdicts per signature:

* ``indication``/``sub_indication``: trust evaluated *now* against the given roots only (no
  operating-system trust list), without fetching and with soft-fail revocation checking.
  This decides :attr:`ValidationReport.valid`.
* ``ltv_indication``/``ltv_sub_indication``: pyHanko's ETSI EN 319 102-1 validation with the
  long-term (LTA) algorithm, offline, revocation data *required*: B-B and B-T documents are
  expected to be INDETERMINATE here; B-LTA made by the B-T-then-augment flow PASSES.

The PAdES level follows REPORT §2: B-B = PAdES subfilter + signing-certificate-v2 + passed;
B-T = + trusted signature time-stamp; B-LT = + a DSS whose content alone (no fetching,
hard-fail revocation, evaluated at the time-stamp time) validates the chain; B-LTA = + a
valid document time-stamp.

Like signing, validation runs ``asyncio.run``: do not call it from a running event loop.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY, ModificationLevel
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko.sign.validation.policy_decl import (
    PdfSignatureValidationSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import (
    REQUIRE_REVINFO,
    CertRevTrustPolicy,
    FreshnessReqType,
)
from pyhanko_certvalidator.registry import SimpleTrustManager

from signing.errors import UnreadablePdfError
from signing.keys import load_root

__all__ = ["SignatureCheck", "TimestampCheck", "ValidationReport", "validate"]

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
    """PAdES baseline level reached ("B-B", "B-T", "B-LT", "B-LTA") or None."""
    timestamp_at: datetime | None
    """Time in the signature time-stamp token, if any."""
    indication: str
    """ETSI EN 319 102-1 main indication: TOTAL-PASSED, INDETERMINATE or TOTAL-FAILED."""
    sub_indication: str | None
    """ETSI sub-indication (e.g. HASH_FAILURE, NO_CERTIFICATE_CHAIN_FOUND), None if passed."""
    ltv_indication: str | None = None
    """EN 319 102-1 indication of the long-term (LTA) validation; None if not run."""
    ltv_sub_indication: str | None = None
    chain: tuple[str, ...] = ()
    """Subjects of the validated certification path, signer first ('' if none)."""
    signer_not_after: datetime | None = None
    """End of validity of the signing certificate."""

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
            "ltv_indication": self.ltv_indication,
            "ltv_sub_indication": self.ltv_sub_indication,
            "chain": list(self.chain),
            "signer_not_after": _iso(self.signer_not_after),
        }


@dataclass(frozen=True)
class TimestampCheck:
    """One document time-stamp (ETSI.RFC3161), the archive time-stamps of B-LTA."""

    timestamp_at: datetime | None
    tsa_subject: str
    intact: bool
    trusted: bool
    tsa_not_after: datetime | None

    def to_dict(self) -> dict[str, object]:
        return {
            "timestamp_at": _iso(self.timestamp_at),
            "tsa_subject": self.tsa_subject,
            "intact": self.intact,
            "trusted": self.trusted,
            "tsa_not_after": _iso(self.tsa_not_after),
        }


@dataclass(frozen=True)
class ValidationReport:
    """All regular signatures of a document, in signing order."""

    signatures: tuple[SignatureCheck, ...]
    document_timestamps: tuple[TimestampCheck, ...] = ()
    dss: dict[str, int] | None = None
    """Counts of certificates, OCSP responses and CRLs in the DSS; None without a DSS."""

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
        return {
            "valid": self.valid,
            "signatures": [s.to_dict() for s in self.signatures],
            "document_timestamps": [t.to_dict() for t in self.document_timestamps],
            "dss": self.dss,
        }


def validate(pdf: bytes, *, trust_roots: Sequence[bytes]) -> ValidationReport:
    """Validate every regular signature in ``pdf`` against ``trust_roots`` (DER).

    A signature that cannot be evaluated at all is reported as TOTAL-FAILED /
    FORMAT_FAILURE rather than raised.

    Raises:
        UnreadablePdfError: the document cannot be parsed or its signatures located.
        ValueError: a trust root is not a DER X.509 certificate.
        RuntimeError: when called from a thread with a running asyncio event loop.
    """
    roots = [load_root(index, der) for index, der in enumerate(trust_roots)]
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = list(reader.embedded_regular_signatures)
        stamps = list(reader.embedded_timestamp_signatures)
        dss = DocumentSecurityStore.read_dss(reader) if "/DSS" in reader.root else None
    except Exception as exc:  # hostile input makes parsers fail in arbitrary ways
        raise UnreadablePdfError(f"{type(exc).__name__}: {exc}") from exc
    if not embedded:
        return ValidationReport(signatures=())
    return asyncio.run(_check_all(reader, embedded, stamps, dss, roots))


async def _check_all(
    reader: Any,
    embedded: list[Any],
    stamps: list[Any],
    dss: Any,
    roots: list[asn1_x509.Certificate],
) -> ValidationReport:
    # One context for the whole document: the cached paths are reused across signatures.
    context = ValidationContext(
        trust_roots=roots, allow_fetching=False, revocation_mode="soft-fail"
    )
    try:
        doc_stamps = tuple([await _check_stamp(ts, context) for ts in stamps])
        lta = any(t.intact and t.trusted for t in doc_stamps)
        checks = []
        for sig in embedded:
            check = await _check(sig, context)
            if check.level == "B-T" and dss is not None and await _dss_suffices(dss, sig, roots):
                check = replace(check, level="B-LTA" if lta else "B-LT")
            ltv, ltv_sub = await _ltv(sig, roots) if roots else (None, None)
            checks.append(replace(check, ltv_indication=ltv, ltv_sub_indication=ltv_sub))
    finally:
        await context.aclose()  # type: ignore[no-untyped-call]
    counts = None
    if dss is not None:
        counts = {"certs": len(dss.certs), "ocsps": len(dss.ocsps), "crls": len(dss.crls)}
    return ValidationReport(signatures=tuple(checks), document_timestamps=doc_stamps, dss=counts)


async def _check_stamp(ts: Any, context: Any) -> TimestampCheck:
    try:
        status = await async_validate_pdf_timestamp(ts, validation_context=context)
        cert = status.signing_cert
        return TimestampCheck(
            timestamp_at=status.timestamp,
            tsa_subject=_subject(cert),
            intact=bool(status.intact and status.valid),
            trusted=bool(status.trusted),
            tsa_not_after=cert["tbs_certificate"]["validity"]["not_after"].native,
        )
    except Exception:  # a broken time-stamp must not hide the signatures
        return TimestampCheck(None, _subject_or_empty(ts), False, False, None)


async def _dss_suffices(dss: Any, sig: Any, roots: list[asn1_x509.Certificate]) -> bool:
    """B-LT test: the DSS alone (no fetching, hard-fail) validates the signer chain at the
    signature time-stamp time, accepting revocation data issued after it."""
    kwargs: dict[str, Any] = {
        "trust_roots": roots,
        "allow_fetching": False,
        "revocation_mode": "hard-fail",
        "retroactive_revinfo": True,
    }
    try:
        ts_status = sig.signer_info["unsigned_attrs"]
        tst = next(
            a["values"][0] for a in ts_status if a["type"].native == "signature_time_stamp_token"
        )
        kwargs["moment"] = tst["content"]["encap_content_info"]["content"].parsed["gen_time"].native
        context = dss.as_validation_context(kwargs)
        try:
            status = await async_validate_pdf_signature(
                sig, signer_validation_context=context, key_usage_settings=_KEY_USAGE
            )
        finally:
            await context.aclose()
        return bool(status.bottom_line)
    except Exception:
        return False


async def _ltv(sig: Any, roots: list[asn1_x509.Certificate]) -> tuple[str, str | None]:
    """EN 319 102-1 long-term validation (pyHanko ``ades_lta_validation``), offline."""
    spec = PdfSignatureValidationSpec(
        signature_validation_spec=SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=roots),
                revinfo_policy=CertRevTrustPolicy(
                    REQUIRE_REVINFO,
                    freshness=None,
                    freshness_req_type=FreshnessReqType.MAX_DIFF_REVOCATION_VALIDATION,
                ),
            ),
            key_usage_settings=_KEY_USAGE,
        ),
        diff_policy=DEFAULT_DIFF_POLICY,
    )
    try:
        result = await ades_lta_validation(
            sig,
            spec,
            timing_info=ValidationTimingInfo.now(),
        )
    except Exception as exc:
        sub = getattr(exc, "ades_subindication", None)
        return INDETERMINATE, sub.standard_name if sub is not None else "GENERIC"
    sub = result.ades_subindic
    if sub is None or sub.status.name == "PASSED":
        return TOTAL_PASSED, None
    return (TOTAL_FAILED if sub.status.name == "FAILED" else INDETERMINATE), sub.standard_name


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
    path = getattr(status, "validation_path", None)
    chain: tuple[str, ...] = ()
    if path is not None:
        chain = tuple(_subject(c) for c in reversed(list(path.iter_certs(include_root=True))))
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
        chain=chain,
        signer_not_after=status.signing_cert["tbs_certificate"]["validity"]["not_after"].native,
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


def _subject(cert: asn1_x509.Certificate) -> str:
    return x509.load_der_x509_certificate(cert.dump()).subject.rfc4514_string()


def _subject_or_empty(sig: Any) -> str:
    try:
        return _subject(sig.signer_cert)
    except Exception:  # the certificate itself may be what is broken
        return ""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
