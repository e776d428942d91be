"""HTTP request and response bodies. Never reused as domain models."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class DocumentMetadataIn(BaseModel):
    """The ``metadata`` part of ``POST /v1/documents``."""

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(description="National register number or enterprise number")
    type: str = Field(description="Document type code from the selection list")
    title: str
    ref: str | None = Field(
        default=None, description="The agency's reference; defaults to the Idempotency-Key"
    )
    issued_on: date | None = None


class ReceiptOut(BaseModel):
    aip_id: str
    agency_id: str
    agency_ref: str
    document_type: str
    sha256: str
    original_sha256: str
    signature_level: str
    stored_at: datetime


class DocumentSummary(BaseModel):
    id: str
    title: str
    type: str
    agency: str
    issued_on: date
    archived_at: datetime


class DocumentPage(BaseModel):
    items: list[DocumentSummary]
    total: int
    next_cursor: str | None


class SignatureOut(BaseModel):
    level: str
    signed_at: datetime
    signer: str


class DocumentDetail(DocumentSummary):
    sha256: str
    size: int
    signature: SignatureOut
    retention_until: date | None


class ArchiveSearchPage(DocumentPage):
    facets: dict[str, dict[str, int]]
