"""Archivists search the whole archive, see a document's history and the audit trail.

Archivists never search by owner number (it would put a national number in a URL);
their reads of a document are recorded in its owner's access log like any other read.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from kluis.api.deps import ArchivistDep, AuditDep, ServicesDep
from kluis.api.routers.loket import (
    MAX_DATE,
    MIN_DATE,
    detail,
    entry,
    newest_manifest,
    record_read,
    search_index,
    summary,
)
from kluis.api.schemas import ArchiveDocumentDetail, ArchiveSearchPage, AuditPage, EventOut
from search.model import Query as IndexQuery

router = APIRouter(prefix="/v1/archive", tags=["archivist"])


@router.get("/search", response_model=ArchiveSearchPage)
async def search_archive(
    archivist: ArchivistDep,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    issued_from: Annotated[date | None, Query(ge=MIN_DATE, le=MAX_DATE)] = None,
    issued_to: Annotated[date | None, Query(ge=MIN_DATE, le=MAX_DATE)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ArchiveSearchPage:
    """Full text and filters over every document, with facets by agency, type and year."""
    page = await search_index(
        services,
        IndexQuery(
            text=q or None,
            agency_id=agency or None,
            document_type=type or None,
            issued_from=issued_from,
            issued_to=issued_to,
            sort="relevance" if q else "newest",
            limit=limit,
            cursor=cursor,
            facets=("agency_id", "document_type", "year"),
        ),
    )
    return ArchiveSearchPage(
        items=[summary(h) for h in page.hits],
        total=page.total,
        next_cursor=page.next_cursor,
        facets={k: dict(v) for k, v in page.facets.items()},
    )


@router.get("/documents/{document_id}", response_model=ArchiveDocumentDetail)
def get_archive_document(
    archivist: ArchivistDep, services: ServicesDep, audit: AuditDep, document_id: str
) -> ArchiveDocumentDetail:
    """One document (its newest version) with its PREMIS event history and its recorded reads."""
    manifest = newest_manifest(services, document_id)
    body = detail(services, manifest, document_id=document_id)
    record_read(audit, services, archivist, manifest, "metadata", document_id=document_id)
    owner_key = services.keyer.key(manifest.metadata.owner_id)
    return ArchiveDocumentDetail(
        **body,
        agency_ref=manifest.metadata.agency_ref,
        owner_kind=manifest.metadata.owner_kind,
        events=[
            EventOut(
                id=e.identifier,
                type=e.event_type,
                at=e.at,
                outcome=e.outcome,
                detail=e.detail,
                agents=list(e.agent_ids),
            )
            for e in manifest.events
        ],
        reads=[entry(e) for e in audit.for_document(owner_key, document_id)],
    )


@router.get("/audit", response_model=AuditPage)
def audit_trail(
    archivist: ArchivistDep,
    audit: AuditDep,
    day: Annotated[
        date | None,
        Query(ge=MIN_DATE, le=MAX_DATE, description="Only this day (UTC); default: every day"),
    ] = None,
    action: Annotated[Literal["read-metadata", "read-content", "write"] | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    """Every recorded read and write, newest first."""
    events, nxt = audit.all(limit=limit, cursor=cursor, day=day.isoformat() if day else None)
    if action is not None:
        events = [e for e in events if e.action == action]
    return AuditPage(items=[entry(e) for e in events], next_cursor=nxt)
