"""PAdES sealing and signature validation for Kluis.

Responsibility: turn PDF bytes or streams into sealed PDFs (:class:`PadesSigner`), say whether
the signatures in a PDF hold (:func:`validate`), and provide the keys for both
(:class:`KeySource`, :class:`Pkcs12KeySource`, the development PKI of :func:`ensure_dev_pki`).

Imports no other Kluis package and no web, CLI or scheduler framework. pyHanko is used
internally; none of its types or exceptions cross this package's public API. The sync entry
points run ``asyncio.run`` and must not be called from inside a running event loop.
"""

from signing.batch import BatchSigner
from signing.devpki import DevPki, ensure_dev_pki
from signing.errors import KeySourceError, SignatureFailedError, SigningError, UnreadablePdfError
from signing.keys import KeySource, Pkcs11KeySource, Pkcs12KeySource
from signing.pades import PadesSigner, SealFacts, SignedPdf
from signing.policy import PadesLevel, SigningPolicy
from signing.upkeep import EvidenceExpiry, augment, evidence_expiry, expiry_report, renew
from signing.validation import SignatureCheck, TimestampCheck, ValidationReport, validate

__all__ = [
    "BatchSigner",
    "DevPki",
    "KeySource",
    "KeySourceError",
    "PadesLevel",
    "PadesSigner",
    "Pkcs11KeySource",
    "Pkcs12KeySource",
    "SignatureCheck",
    "TimestampCheck",
    "EvidenceExpiry",
    "augment",
    "evidence_expiry",
    "expiry_report",
    "renew",
    "SealFacts",
    "SignatureFailedError",
    "SignedPdf",
    "SigningError",
    "SigningPolicy",
    "UnreadablePdfError",
    "ValidationReport",
    "ensure_dev_pki",
    "validate",
]
