"""Citizens and enterprises read their own documents through a portal (loket).

The owner comes from the verified token only. A document of someone else answers 404,
exactly like one that does not exist, so ids reveal nothing. Ownership is decided
against the stored package, never against the index alone. Every read of a document
(metadata or content) is recorded in the access log before it is answered; when the log
cannot be written the read is refused (503), never served unrecorded.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from archive.errors import PackageNotFoundError
from archive.model import AipManifest
from kluis.api.deps import AuditDep, CitizenDep, ServicesDep
from kluis.api.schemas import (
    AccessLogEntry,
    AccessLogPage,
    DocumentDetail,
    DocumentPage,
    DocumentSummary,
    SignatureOut,
)
from kluis.audit import AuditEvent, AuditLog
from kluis.auth import Principal
from kluis.errors import RangeNotSatisfiableError
from kluis.wiring import Services
from search.model import Hit, Page
from search.model import Query as IndexQuery
from search.tantivy_index import TantivyIndex
from signing.errors import SigningError
from signing.validation import validate

router = APIRouter(prefix="/v1/me", tags=["loket"])

MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2200, 12, 31)
"""Bounds on date filters (the index cannot represent every date)."""

_REPORTS: OrderedDict[str, dict[str, Any]] = OrderedDict()
_REPORTS_LOCK = threading.Lock()
_REPORTS_MAX = 1024


def summary(hit: Hit) -> DocumentSummary:
    return DocumentSummary(
        id=hit.aip_id,
        title=hit.title,
        type=hit.document_type,
        agency=hit.agency_id,
        issued_on=hit.issued_on,
        archived_at=hit.ingested_at,
    )


def check_document_id(document_id: str) -> None:
    """Only canonical UUIDs reach storage; anything else is simply not found."""
    try:
        canonical = str(uuid.UUID(document_id))
    except ValueError:
        raise PackageNotFoundError(document_id[:64]) from None
    if canonical != document_id:
        raise PackageNotFoundError(document_id[:64])


def newest_manifest(services: Services, document_id: str) -> AipManifest:
    """The manifest of the newest version of a document (its id is the first version's).

    The id of a later version is not a document id: it is not found, like any unknown id.

    Raises: PackageNotFoundError.
    """
    check_document_id(document_id)
    aip_id = services.store.resolve(document_id)
    manifest = services.store.manifest(aip_id)
    if aip_id == document_id and manifest.previous_aip_id is not None:
        raise PackageNotFoundError(document_id)
    return manifest


def _owned_manifest(services: Services, owner_id: str, document_id: str) -> AipManifest:
    manifest = newest_manifest(services, document_id)
    if manifest.metadata.owner_id != owner_id:
        raise PackageNotFoundError(document_id)
    return manifest


def signature_report(services: Services, manifest: AipManifest) -> dict[str, Any]:
    """The validation report of the stored PDF (cached per PDF hash: the bytes are fixed)."""
    key = manifest.pdf.sha256
    with _REPORTS_LOCK:
        if key in _REPORTS:
            _REPORTS.move_to_end(key)
            return _REPORTS[key]
    with services.store.open_file(manifest.aip_id, manifest.pdf.path, manifest=manifest) as f:
        pdf = f.read()
    try:
        report = validate(pdf, trust_roots=services.trust_roots).to_dict()
    except SigningError as exc:
        report = {"valid": False, "signatures": [], "error": str(exc)}
    with _REPORTS_LOCK:
        _REPORTS[key] = report
        while len(_REPORTS) > _REPORTS_MAX:
            _REPORTS.popitem(last=False)
    return report


def record_read(
    audit: AuditLog,
    services: Services,
    reader: Principal,
    manifest: AipManifest,
    action: str,
    *,
    document_id: str,
) -> None:
    own = reader.role == "citizen"
    audit.record(
        action="read-content" if action == "content" else "read-metadata",
        document_id=document_id,
        actor_role="owner" if own else reader.role,
        actor="owner" if own else reader.subject,
        client_id=reader.client_id,
        owner_key=services.keyer.key(manifest.metadata.owner_id),
    )


def detail(services: Services, manifest: AipManifest, *, document_id: str) -> dict[str, Any]:
    """The shown fields of ``manifest`` (the newest version) under ``document_id``; archived
    at is the first version's time (a renewed signature does not make a document newer)."""
    meta = manifest.metadata
    archived_at = manifest.created_at
    if manifest.aip_id != document_id:
        archived_at = services.store.manifest(document_id).created_at
    return {
        "id": document_id,
        "title": meta.title,
        "type": meta.document_type,
        "agency": meta.agency_id,
        "issued_on": meta.issued_on,
        "archived_at": archived_at,
        "sha256": manifest.pdf.sha256,
        "size": manifest.pdf.size,
        "signature": SignatureOut(
            level=manifest.signature.level,
            signed_at=manifest.signature.signed_at,
            signer=manifest.signature.signer_subject,
        ),
        "retention_until": meta.retention_until,
        "signature_report": signature_report(services, manifest),
    }


def entry(event: AuditEvent) -> AccessLogEntry:
    return AccessLogEntry(
        at=event.at,
        action=event.action,
        document_id=event.document_id,
        actor_role=event.actor_role,
        actor=event.actor,
        client_id=event.client_id,
    )


async def search_index(services: Services, query: IndexQuery) -> Page:
    """The embedded index answers in well under a millisecond: ask it on the event loop
    (a thread-pool hop costs more than the search). A networked index goes to a thread."""
    if isinstance(services.index, TantivyIndex):
        return services.index.search(query)
    return await run_in_threadpool(services.index.search, query)


@router.get("/documents", response_model=DocumentPage)
async def list_documents(
    citizen: CitizenDep,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=200, description="Dutch full text")] = None,
    type: Annotated[str | None, Query(max_length=64, description="Document type code")] = None,
    issued_from: Annotated[
        date | None, Query(ge=MIN_DATE, le=MAX_DATE, description="Issued on or after")
    ] = None,
    issued_to: Annotated[
        date | None, Query(ge=MIN_DATE, le=MAX_DATE, description="Issued on or before")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """The caller's own documents, newest first (or by relevance with ``q``)."""
    page = await search_index(
        services,
        IndexQuery(
            text=q or None,
            owner_key=services.keyer.key(citizen.subject),
            document_type=type or None,
            issued_from=issued_from,
            issued_to=issued_to,
            sort="relevance" if q else "newest",
            limit=limit,
            cursor=cursor,
        ),
    )
    body = DocumentPage(
        items=[summary(h) for h in page.hits], total=page.total, next_cursor=page.next_cursor
    )
    # Serialised here, once: returning the model would make FastAPI validate it a second
    # time against response_model (which still documents the body in OpenAPI).
    return Response(body.model_dump_json(), media_type="application/json")


@router.get("/documents/{document_id}", response_model=DocumentDetail)
def get_document(
    citizen: CitizenDep, services: ServicesDep, audit: AuditDep, document_id: str
) -> DocumentDetail:
    """Metadata of one own document and the validation report of its signature."""
    manifest = _owned_manifest(services, citizen.subject, document_id)
    body = detail(services, manifest, document_id=document_id)
    record_read(audit, services, citizen, manifest, "metadata", document_id=document_id)
    return DocumentDetail(**body)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range as inclusive bounds; None to serve the whole document.

    Raises: RangeNotSatisfiableError.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None  # other units and multiple ranges: the whole representation (RFC 9110)
    first, sep, last = spec.strip().partition("-")
    if not sep or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "" or int(last) == 0:
            raise RangeNotSatisfiableError(size)
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiableError(size)
    return start, min(end, size - 1)


@router.get(
    "/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/pdf": {}}},
        206: {"content": {"application/pdf": {}}, "description": "The requested range"},
        304: {"description": "Not modified (If-None-Match)"},
        416: {"description": "Range not satisfiable"},
    },
)
def get_content(
    citizen: CitizenDep,
    services: ServicesDep,
    audit: AuditDep,
    document_id: str,
    range_: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
    if_range: Annotated[str | None, Header(alias="If-Range", max_length=200)] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=500)] = None,
) -> Response:
    """The signed PDF of the newest version exactly as archived (renewals append evidence
    to it); supports ``Range`` and ``If-None-Match``."""
    manifest = _owned_manifest(services, citizen.subject, document_id)
    return content_response(
        services, audit, citizen, manifest, document_id, range_, if_range, if_none_match
    )


def content_response(
    services: Services,
    audit: AuditLog,
    reader: Principal,
    manifest: AipManifest,
    document_id: str,
    range_: str | None,
    if_range: str | None,
    if_none_match: str | None,
) -> Response:
    pdf = manifest.pdf
    etag = f'"{pdf.sha256}"'
    name = pdf.path.rsplit("/", 1)[-1]
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store",
    }
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    bounds = None
    if range_ is not None and (if_range is None or if_range.strip() == etag):
        bounds = parse_range(range_, pdf.size)
    start, end = bounds if bounds is not None else (0, pdf.size - 1)
    record_read(audit, services, reader, manifest, "content", document_id=document_id)

    def chunks() -> Iterator[bytes]:
        remaining = end - start + 1
        with services.store.open_file(manifest.aip_id, pdf.path, manifest=manifest) as f:
            skip = start
            if skip and f.seekable():
                f.seek(skip)
                skip = 0
            while skip:
                skip -= len(f.read(min(skip, 1 << 16)))
            while remaining > 0 and (block := f.read(min(remaining, 1 << 16))):
                remaining -= len(block)
                yield block

    headers["Content-Length"] = str(end - start + 1)
    status = 200
    if bounds is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{pdf.size}"
    return StreamingResponse(
        chunks(), status_code=status, media_type="application/pdf", headers=headers
    )


@router.get("/access-log", response_model=AccessLogPage)
def access_log(
    citizen: CitizenDep,
    services: ServicesDep,
    audit: AuditDep,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AccessLogPage:
    """Who read the caller's documents, when and through which client; newest first."""
    events, nxt = audit.for_owner(services.keyer.key(citizen.subject), limit=limit, cursor=cursor)
    return AccessLogPage(items=[entry(e) for e in events], next_cursor=nxt)
