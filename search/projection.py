"""The projection of an archived package (AIP) onto its search index document.

Invariants:
    * The index never holds a raw owner number: :class:`OwnerKeyer` turns it into
      ``owner_key = hex(HMAC-SHA256(secret, owner_id))``. The loket computes the same key from
      the citizen's verified token, so the secret must be the same for indexing and querying
      (and rotating it means a reindex).
    * :func:`project` is pure: same manifest, text, keyer and hold flag, same document. It
      reads nothing but its arguments (reindex builds the index from storage alone).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

from archive.model import AipManifest, DocumentMetadata, IndexRecord
from search._outbox import document_to_json
from search.model import IndexDocument

MIN_SECRET_BYTES = 16


class OwnerKeyer:
    """Keyed, one-way owner keys. ``repr`` never shows the secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        """Raises: ValueError when ``secret`` is shorter than 16 bytes."""
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the owner key secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def key(self, owner_id: str) -> str:
        """The owner key of a canonical owner number (digits only, as stored).

        A formatted number (``85.07.30-033.61``) would silently give another key and hide
        the owner's documents, so it is refused.

        Raises:
            ValueError: ``owner_id`` is empty or not only ASCII digits.
        """
        if not owner_id or not (owner_id.isascii() and owner_id.isdigit()):
            raise ValueError("owner_id must be the canonical number: ASCII digits only")
        return hmac.new(self._secret, owner_id.encode("ascii"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "OwnerKeyer(secret=<hidden>)"


def project(
    manifest: AipManifest, text: str, keyer: OwnerKeyer, *, on_hold: bool = False
) -> IndexDocument:
    """The index document of one committed package.

    ``text`` is the package's extracted text (stored in the AIP); ``ingested_at`` is the
    package's ``created_at``.

    Raises:
        ValueError: the manifest's owner id is not canonical (see :meth:`OwnerKeyer.key`).
    """
    return _document(
        manifest.aip_id, manifest.metadata, manifest.created_at, text, keyer, on_hold=on_hold
    )


def project_record(
    record: IndexRecord, keyer: OwnerKeyer, *, on_hold: bool = False
) -> IndexDocument:
    """The index document of one document, from its newest version: keyed by the document
    id, ``ingested_at`` is when the document was archived; held when ``on_hold`` or
    ``record.on_hold`` (the retention projection sets the latter from storage). For an
    unversioned document it equals :func:`project` of its manifest and text.

    Raises:
        ValueError: the owner id is not canonical (see :meth:`OwnerKeyer.key`).
    """
    return _document(
        record.document_id,
        record.metadata,
        record.created_at,
        record.text,
        keyer,
        on_hold=on_hold or record.on_hold,
    )


def _document(
    aip_id: str,
    meta: DocumentMetadata,
    ingested_at: datetime,
    text: str,
    keyer: OwnerKeyer,
    *,
    on_hold: bool,
) -> IndexDocument:
    return IndexDocument(
        aip_id=aip_id,
        owner_key=keyer.key(meta.owner_id),
        agency_id=meta.agency_id,
        document_type=meta.document_type,
        title=meta.title,
        text=text,
        issued_on=meta.issued_on,
        ingested_at=ingested_at,
        agency_ref=meta.agency_ref,
        retention_until=meta.retention_until,
        on_hold=on_hold,
    )


DIGEST_HEX_CHARS = 32


def document_digest(doc: IndexDocument) -> str:
    """A content digest of an index document: SHA-256 over a canonical JSON of every field,
    truncated to 128 bits (hex). Stored with the entry, so reconcile can compare the index
    with what storage projects to without reading the entry back field by field."""
    fields = document_to_json(doc)
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_HEX_CHARS]
