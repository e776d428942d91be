"""Real archive values for the search tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from archive.model import AipManifest, DocumentMetadata, FileEntry, SignatureInfo

OWNER = "85073003328"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def manifest(
    aip_id: str,
    *,
    owner_id: str = OWNER,
    title: str = "Besluit over uw vergunning",
    minutes: int = 0,
    retention_until: date | None = date(2035, 5, 17),
) -> AipManifest:
    pdf = FileEntry("representations/rep1/data/document.pdf", 1234, "ab" * 32, "application/pdf")
    text = FileEntry("representations/rep1/data/document.txt", 56, "cd" * 32, "text/plain")
    return AipManifest(
        aip_id=aip_id,
        metadata=DocumentMetadata(
            owner_id=owner_id,
            owner_kind="person",
            agency_id="OVO000001",
            document_type="besluit",
            title=title,
            issued_on=date(2024, 5, 17),
            agency_ref=f"2024/{aip_id}",
            retention_until=retention_until,
        ),
        files=(pdf, text),
        pdf_path=pdf.path,
        text_path=text.path,
        original_sha256="ef" * 32,
        signature=SignatureInfo("B-T", T0, "CN=Kluis dev", "01" * 32),
        created_at=T0 + timedelta(minutes=minutes),
    )
