"""HTTP request and response bodies. Never reused as domain models."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DocumentMetadataIn(BaseModel):
    """The ``metadata`` part of ``POST /v1/documents``."""

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(max_length=32, description="National register number or enterprise number")
    type: str = Field(max_length=64, description="Document type code from the selection list")
    title: str = Field(max_length=500)
    ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The agency's reference; defaults to the Idempotency-Key",
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
    signature_report: dict[str, Any] | None = Field(
        default=None, description="Validation of the PDF's signatures, checked on this read"
    )


class BatchItemResult(BaseModel):
    index: int
    ref: str | None
    status: int = Field(description="201 created, 200 replayed, else the problem's status")
    receipt: ReceiptOut | None = None
    problem: dict[str, Any] | None = None


class BatchResult(BaseModel):
    items: list[BatchItemResult]


class AccessLogEntry(BaseModel):
    at: datetime
    action: str
    document_id: str
    actor_role: str = Field(description="owner (you), agency or archivist")
    actor: str
    client_id: str | None


class AccessLogPage(BaseModel):
    items: list[AccessLogEntry]
    next_cursor: str | None


class EventOut(BaseModel):
    id: str
    type: str
    at: datetime
    outcome: str
    detail: str
    agents: list[str]


class ArchiveDocumentDetail(DocumentDetail):
    agency_ref: str
    owner_kind: str
    events: list[EventOut] = Field(description="PREMIS events from the package")
    reads: list[AccessLogEntry] = Field(description="Recorded reads of this document")


class AuditPage(BaseModel):
    items: list[AccessLogEntry]
    next_cursor: str | None


class ArchiveSearchPage(DocumentPage):
    facets: dict[str, dict[str, int]]
