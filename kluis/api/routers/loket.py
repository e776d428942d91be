"""Citizens and enterprises read their own documents through a portal (loket).

The owner comes from the verified token only. A document of someone else answers 404,
exactly like one that does not exist, so ids reveal nothing. Ownership is decided
against the stored package, never against the index alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from archive.errors import PackageNotFoundError
from archive.model import AipManifest
from kluis.api.deps import CitizenDep, ServicesDep
from kluis.api.schemas import DocumentDetail, DocumentPage, DocumentSummary, SignatureOut
from kluis.wiring import Services
from search.model import Hit
from search.model import Query as IndexQuery

router = APIRouter(prefix="/v1/me", tags=["loket"])


def summary(hit: Hit) -> DocumentSummary:
    return DocumentSummary(
        id=hit.aip_id,
        title=hit.title,
        type=hit.document_type,
        agency=hit.agency_id,
        issued_on=hit.issued_on,
        archived_at=hit.ingested_at,
    )


def _owned_manifest(services: Services, owner_id: str, document_id: str) -> AipManifest:
    try:
        uuid.UUID(document_id)
    except ValueError:
        raise PackageNotFoundError(document_id) from None
    manifest = services.store.manifest(document_id)
    if manifest.metadata.owner_id != owner_id:
        raise PackageNotFoundError(document_id)
    return manifest


@router.get("/documents", response_model=DocumentPage)
def list_documents(
    citizen: CitizenDep,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=200, description="Dutch full text")] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DocumentPage:
    """The caller's own documents, newest first (or by relevance with ``q``)."""
    page = services.index.search(
        IndexQuery(
            text=q or None,
            owner_key=services.keyer.key(citizen.subject),
            sort="relevance" if q else "newest",
            limit=limit,
            cursor=cursor,
        )
    )
    return DocumentPage(
        items=[summary(h) for h in page.hits], total=page.total, next_cursor=page.next_cursor
    )


@router.get("/documents/{document_id}", response_model=DocumentDetail)
def get_document(citizen: CitizenDep, services: ServicesDep, document_id: str) -> DocumentDetail:
    manifest = _owned_manifest(services, citizen.subject, document_id)
    meta = manifest.metadata
    return DocumentDetail(
        id=manifest.aip_id,
        title=meta.title,
        type=meta.document_type,
        agency=meta.agency_id,
        issued_on=meta.issued_on,
        archived_at=manifest.created_at,
        sha256=manifest.pdf.sha256,
        size=manifest.pdf.size,
        signature=SignatureOut(
            level=manifest.signature.level,
            signed_at=manifest.signature.signed_at,
            signer=manifest.signature.signer_subject,
        ),
        retention_until=meta.retention_until,
    )


@router.get(
    "/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/pdf": {}}}},
)
def get_content(citizen: CitizenDep, services: ServicesDep, document_id: str) -> StreamingResponse:
    """The signed PDF exactly as archived."""
    manifest = _owned_manifest(services, citizen.subject, document_id)
    pdf = manifest.pdf

    def chunks() -> Iterator[bytes]:
        with services.store.open_file(manifest.aip_id, pdf.path) as f:
            while block := f.read(1 << 16):
                yield block

    name = pdf.path.rsplit("/", 1)[-1]
    return StreamingResponse(
        chunks(),
        media_type="application/pdf",
        headers={
            "Content-Length": str(pdf.size),
            "ETag": f'"{pdf.sha256}"',
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "private, no-store",
        },
    )
