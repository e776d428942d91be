"""Destruction certificates: signed, time-stamped evidence of what was disposed of, and why.

A certificate is canonical JSON (sorted keys, UTF-8) listing every destroyed or transferred
document with its manifest hash (SHA-256 of each version's root METS, taken before
deletion), its type, action, retention end and the selection-list version that applied, the
documents that were skipped and why, and who proposed, reviewed, approved and executed the
disposal, and when. It holds no personal data: ids, type codes, dates, hashes and archivist
ids only (no owner numbers, titles or agency references).

Storage: ``certificates/<id>.json`` and its detached CMS signature ``certificates/<id>.p7s``
(CAdES, with an RFC 3161 signature time-stamp when a TSA is configured; see
:mod:`signing.evidence`). Both are conditional creates, and both get a **legal hold** right
after: a hold has no end date and is never lifted by Kluis, so the certificate is kept
permanently on every backend (on S3 a COMPLIANCE retention would need an end date; some
stores cap it, a hold has none). The signature is always made over the stored JSON bytes, so
a run that crashed between the two writes signs exactly what is stored.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from archive.errors import InvalidKeyError, ObjectExistsError, ObjectNotFoundError
from archive.storage.base import Storage, check_key
from retention.disposal_errors import CertificateNotFoundError
from signing.evidence import EvidenceCheck, verify_detached

__all__ = [
    "CERTIFICATES_PREFIX",
    "StoredCertificate",
    "canonical_json",
    "certificate_id_for",
    "read_certificate",
    "store_certificate",
    "verify_certificate",
]

CERTIFICATES_PREFIX = "certificates/"


@dataclass(frozen=True)
class StoredCertificate:
    certificate_id: str
    document: bytes
    """The certificate JSON exactly as stored (and signed)."""
    signature: bytes
    """Detached CMS SignedData, DER."""

    @property
    def content(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.document)
        return value


def certificate_id_for(proposal_id: str) -> str:
    """One certificate per proposal, named after it: a resumed execution finds its own."""
    return f"c-{proposal_id}"


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1).encode()


def _keys(certificate_id: str) -> tuple[str, str]:
    if not certificate_id or "/" in certificate_id:
        raise InvalidKeyError(certificate_id, "a certificate id is a single key segment")
    base = f"{CERTIFICATES_PREFIX}{certificate_id}"
    return check_key(f"{base}.json"), check_key(f"{base}.p7s")


def _read(storage: Storage, key: str) -> bytes | None:
    try:
        with storage.open(key) as stream:
            return stream.read()
    except ObjectNotFoundError:
        return None


def _create_once(storage: Storage, key: str, data: bytes) -> bytes:
    """Store ``data`` unless the key exists; return what is stored."""
    try:
        storage.put(
            key, io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            if_absent=True,
        )  # fmt: skip
    except ObjectExistsError:
        stored = _read(storage, key)
        if stored is None:
            raise
        return stored
    return data


def store_certificate(
    storage: Storage,
    certificate_id: str,
    document: Callable[[], bytes],
    sign: Callable[[bytes], bytes],
) -> StoredCertificate:
    """Store the certificate and its signature, each once, and put both under legal hold.

    ``document`` is only called when no certificate JSON is stored yet; ``sign`` only when
    no signature is stored yet, and always over the stored JSON.

    Raises:
        SigningError: signing failed (the JSON stays stored; a retry signs it).
        InvalidKeyError, StorageUnavailableError.
    """
    json_key, sig_key = _keys(certificate_id)
    stored_json = _read(storage, json_key)
    if stored_json is None:
        stored_json = _create_once(storage, json_key, document())
    storage.set_legal_hold(json_key, True)
    signature = _read(storage, sig_key)
    if signature is None:
        signature = _create_once(storage, sig_key, sign(stored_json))
    storage.set_legal_hold(sig_key, True)
    return StoredCertificate(certificate_id, stored_json, signature)


def read_certificate(storage: Storage, certificate_id: str) -> StoredCertificate:
    """Raises: CertificateNotFoundError, StorageUnavailableError."""
    try:
        json_key, sig_key = _keys(certificate_id)
    except InvalidKeyError as exc:
        raise CertificateNotFoundError(certificate_id) from exc
    document = _read(storage, json_key)
    signature = _read(storage, sig_key)
    if document is None or signature is None:
        raise CertificateNotFoundError(certificate_id)
    return StoredCertificate(certificate_id, document, signature)


def verify_certificate(
    certificate: StoredCertificate, *, trust_roots: Sequence[bytes]
) -> EvidenceCheck:
    """Check the certificate's signature (and time-stamp) against ``trust_roots``.

    Raises:
        ValueError: a trust root is not a DER certificate.
    """
    return verify_detached(certificate.document, certificate.signature, trust_roots=trust_roots)
