"""Detached CMS (CAdES) signatures over evidence documents such as destruction certificates.

:func:`sign_detached` seals arbitrary bytes with the archive's :class:`KeySource`: a detached
CMS ``SignedData`` (DER, the ``.p7s`` format ``openssl cms -verify -binary -inform DER
-content FILE`` accepts) with CAdES signed attributes (signing-certificate-v2, signing time,
message digest) and, when ``tsa_url`` is given, an RFC 3161 signature time-stamp as an
unsigned attribute (CAdES-B-T). :func:`verify_detached` checks such a signature against the
given trust roots and reports, without raising, whether it holds.

pyHanko and asn1crypto stay inside this module: callers pass and receive bytes and
:class:`EvidenceCheck`. Both functions run ``asyncio.run``: never call them from inside a
running event loop (FastAPI routers that use them are ``def``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import cms
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko_certvalidator import ValidationContext

from signing.errors import SignatureFailedError
from signing.keys import KeySource, load_root

__all__ = ["EvidenceCheck", "sign_detached", "verify_detached"]

_TSA_TIMEOUT_S = 10
_DIGEST = "sha256"


@dataclass(frozen=True)
class EvidenceCheck:
    """What :func:`verify_detached` found. ``ok`` means intact, valid and trusted."""

    intact: bool
    """The signed digest matches the data."""
    valid: bool
    """The signature value verifies with the signer's public key."""
    trusted: bool
    """The signer's certificate chains to one of the trust roots."""
    signer_subject: str
    signed_at: datetime | None
    """The signing-time attribute (claimed by the signer)."""
    timestamped_at: datetime | None
    """The RFC 3161 signature time-stamp's time, when present and valid."""
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted


def sign_detached(
    data: bytes, keys: KeySource, *, tsa_url: str | None = None, signed_at: datetime | None = None
) -> bytes:
    """A detached CAdES signature (DER ``ContentInfo``) over ``data``.

    Raises:
        KeySourceError: the key cannot be loaded.
        SignatureFailedError: signing or the time-stamp request failed.
        RuntimeError: called from a thread with a running event loop.
    """
    from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

    timestamper = HTTPTimeStamper(tsa_url, timeout=_TSA_TIMEOUT_S) if tsa_url else None
    with keys.open_signer() as signer:
        try:
            settings = PdfCMSSignedAttributes(signing_time=signed_at) if signed_at else None
            content: Any = asyncio.run(
                signer.async_sign_general_data(
                    data,
                    _DIGEST,
                    detached=True,
                    use_cades=True,
                    timestamper=timestamper,
                    signed_attr_settings=settings,
                )
            )
        except Exception as exc:  # pyHanko, asn1crypto and the TSA client raise many types
            raise SignatureFailedError(f"{type(exc).__name__}: {exc}") from exc
    der: bytes = content.dump()
    return der


def verify_detached(
    data: bytes, signature: bytes, *, trust_roots: Sequence[bytes]
) -> EvidenceCheck:
    """Check a detached CMS signature over ``data`` against ``trust_roots`` (DER).

    Never raises for a bad signature: the answer says what is wrong.

    Raises:
        ValueError: a trust root is not a DER certificate.
        RuntimeError: called from a thread with a running event loop.
    """
    roots = [load_root(i, der) for i, der in enumerate(trust_roots)]
    try:
        info = cms.ContentInfo.load(signature)
        signed_data = info["content"]
        if info["content_type"].native != "signed_data":
            raise ValueError("not a CMS SignedData")
        signed_data.native  # noqa: B018  (parse eagerly: asn1crypto is lazy)
    except (ValueError, TypeError, KeyError) as exc:
        return EvidenceCheck(False, False, False, "", None, None, f"unreadable CMS: {exc}")
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    ts_context = ValidationContext(trust_roots=roots, allow_fetching=False)
    try:
        status: Any = asyncio.run(
            async_validate_detached_cms(
                data,
                signed_data,
                signer_validation_context=context,
                ts_validation_context=ts_context,
            )
        )
    except Exception as exc:  # pyHanko reports malformed containers with many types
        return EvidenceCheck(False, False, False, "", None, None, f"{type(exc).__name__}: {exc}")
    stamp = getattr(status, "timestamp_validity", None)
    stamped_at = stamp.timestamp if stamp is not None and stamp.valid and stamp.intact else None
    return EvidenceCheck(
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        signer_subject=status.signing_cert.subject.human_friendly,
        signed_at=getattr(status, "signer_reported_dt", None),
        timestamped_at=stamped_at,
        problem=None if status.bottom_line else "the signature does not validate",
    )
