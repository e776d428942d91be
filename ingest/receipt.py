"""The receipt an agency gets once its document is durably stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from archive.model import AipManifest


@dataclass(frozen=True)
class Receipt:
    aip_id: str
    agency_id: str
    agency_ref: str
    document_type: str
    sha256: str
    """SHA-256 of the stored, signed PDF."""
    original_sha256: str
    """SHA-256 of the PDF as submitted."""
    signature_level: str
    stored_at: datetime

    @classmethod
    def from_manifest(cls, manifest: AipManifest) -> Receipt:
        meta = manifest.metadata
        return cls(
            aip_id=manifest.aip_id,
            agency_id=meta.agency_id,
            agency_ref=meta.agency_ref,
            document_type=meta.document_type,
            sha256=manifest.pdf.sha256,
            original_sha256=manifest.original_sha256,
            signature_level=manifest.signature.level,
            stored_at=manifest.created_at,
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "aip_id": self.aip_id,
            "agency_id": self.agency_id,
            "agency_ref": self.agency_ref,
            "document_type": self.document_type,
            "sha256": self.sha256,
            "original_sha256": self.original_sha256,
            "signature_level": self.signature_level,
            "stored_at": self.stored_at.isoformat(),
        }
