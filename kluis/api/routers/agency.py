"""Agencies submit documents and read back their receipts.

Idempotency: the agency reference (``metadata.ref``, or the ``Idempotency-Key`` header)
names the deposit. A retry with the same PDF and metadata answers ``200`` with the first
receipt; a retry with another PDF or other metadata answers ``409``. ``Content-Digest``
(RFC 9530), when sent, is checked over the whole request content by the edge middleware
before the request reaches this router, so a corrupted upload stores nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from archive.errors import PackageNotFoundError
from ingest.errors import FieldProblem, IdempotencyConflictError, InvalidSubmissionError
from ingest.owners import InvalidOwnerNumber, parse_owner
from ingest.pipeline import IngestResult
from ingest.receipt import Receipt
from ingest.submission import Submission
from kluis.api._multipart import read_form
from kluis.api.deposits import Deposits
from kluis.api.deps import AgencyDep, DepositsDep, MetricsDep, ServicesDep
from kluis.api.document_form import DOCUMENT_FORM_OPENAPI, MAX_METADATA_CHARS, document_parts
from kluis.api.problems import TYPE_BASE
from kluis.api.routers.loket import check_document_id
from kluis.api.schemas import (
    BatchItemResult,
    BatchResult,
    DocumentMetadataIn,
    ReceiptOut,
)
from kluis.auth import Principal
from kluis.errors import UnsupportedMediaTypeError
from kluis.observability import Metrics
from kluis.problems import problem_extensions, problem_for
from kluis.wiring import Services

router = APIRouter(prefix="/v1", tags=["agency"])
log = logging.getLogger("kluis.api")

MAX_BATCH = 100
_PDF_TYPES = {"application/pdf", "application/octet-stream", "application/x-pdf"}


def _metadata_obj(raw: object, where: str = "") -> DocumentMetadataIn:
    try:
        return DocumentMetadataIn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidSubmissionError(
            [
                FieldProblem(where + (".".join(str(p) for p in e["loc"]) or "metadata"), e["msg"])
                for e in exc.errors()
            ]
        ) from exc


def _json(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidSubmissionError(
            [FieldProblem("metadata", "must be JSON: owner, type, title, ref")]
        ) from exc


def _check_pdf_type(content_type: str | None) -> None:
    ctype = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if ctype not in _PDF_TYPES:
        raise UnsupportedMediaTypeError(f"the file part must be application/pdf, not {ctype}")


def _read_pdf(file: UploadFile, limit: int) -> bytes:
    _check_pdf_type(file.content_type)
    data: bytes = file.file.read(limit + 1)
    return data


def _same_request(services: Services, aip_id: str, meta: DocumentMetadataIn) -> bool:
    stored = services.store.manifest(aip_id).metadata
    try:
        owner = parse_owner(meta.owner).id
    except InvalidOwnerNumber:
        return False
    return (
        stored.owner_id == owner
        and stored.document_type == meta.type
        and stored.title == meta.title
        and (meta.issued_on is None or stored.issued_on == meta.issued_on)
    )


def _submission(
    agency: Principal, meta: DocumentMetadataIn, ref: str, filename: str | None
) -> Submission:
    return Submission(
        agency_id=agency.subject,
        owner=meta.owner,
        document_type=meta.type,
        title=meta.title,
        agency_ref=ref,
        issued_on=meta.issued_on,
        file_name=_pdf_name(filename),
    )


def _conflict(agency: Principal, ref: str, result: IngestResult) -> IdempotencyConflictError:
    return IdempotencyConflictError(agency.subject, ref, result.receipt.aip_id)


def _count_failure(metrics: Metrics, exc: Exception) -> None:
    problem = problem_for(exc)
    rejected = problem is not None and 400 <= problem.status < 500
    metrics.ingests.labels("rejected" if rejected else "failed").inc()


def _answer(metrics: Metrics, result: IngestResult) -> tuple[ReceiptOut, bool]:
    metrics.ingests.labels("created" if result.created else "replayed").inc()
    return ReceiptOut(**result.receipt.to_dict()), result.created  # type: ignore[arg-type]


def ingest_one(
    *,
    agency: Principal,
    services: Services,
    deposits: Deposits,
    metrics: Metrics,
    meta: DocumentMetadataIn,
    ref: str,
    data: bytes,
    filename: str | None,
) -> tuple[ReceiptOut, bool]:
    """One deposit, blocking (the batch runs in a worker thread); its audit record is written
    with it (:mod:`kluis.api.deposits`)."""
    try:
        result = deposits.run(_submission(agency, meta, ref, filename), data, agency.client_id)
        if not result.created and not _same_request(services, result.receipt.aip_id, meta):
            raise _conflict(agency, ref, result)
    except Exception as exc:
        _count_failure(metrics, exc)
        raise
    return _answer(metrics, result)


async def ingest_one_async(
    *,
    agency: Principal,
    services: Services,
    deposits: Deposits,
    metrics: Metrics,
    meta: DocumentMetadataIn,
    ref: str,
    data: bytes,
    filename: str | None,
) -> tuple[ReceiptOut, bool]:
    """As :func:`ingest_one`, on the event loop: nothing here blocks (a replay's stored
    metadata is read in a worker thread)."""
    try:
        submission = _submission(agency, meta, ref, filename)
        result = await deposits.run_async(submission, data, agency.client_id)
        if not result.created and not await run_in_threadpool(
            _same_request, services, result.receipt.aip_id, meta
        ):
            raise _conflict(agency, ref, result)
    except Exception as exc:
        _count_failure(metrics, exc)
        raise
    return _answer(metrics, result)


@router.post(
    "/documents",
    status_code=201,
    response_model=ReceiptOut,
    responses={
        200: {"model": ReceiptOut, "description": "A retry: the earlier receipt"},
        409: {"description": "The reference was used for another document"},
        413: {"description": "Too large"},
        415: {"description": "Not a PDF part"},
    },
    # The body is read by kluis.api._multipart and checked by kluis.api.document_form, not
    # by FastAPI's form machinery (CPU per deposit); the OpenAPI document is unchanged.
    openapi_extra=DOCUMENT_FORM_OPENAPI,
)
async def submit_document(
    request: Request,
    agency: AgencyDep,
    services: ServicesDep,
    deposits: DepositsDep,
    metrics: MetricsDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
    ] = None,
    content_digest: Annotated[
        str | None,
        Header(
            alias="Content-Digest",
            description="RFC 9530, e.g. sha-256=:<base64>:, over the whole request content",
        ),
    ] = None,
) -> JSONResponse:
    """Archive one PDF for one owner. Retrying with the same reference is safe."""
    # async: the deposit is handed to an ingest process (or a worker thread) and awaited;
    # what runs here is parsing, which a hop through the thread pool would cost more than.
    # The body is read only now, after the caller is authenticated and rate-limited.
    limit = services.settings.max_pdf_bytes
    file, metadata = document_parts(await read_form(request, file_limit=limit))
    meta = _metadata_obj(_json(metadata))
    ref = meta.ref or idempotency_key
    if ref is None:
        raise InvalidSubmissionError([FieldProblem("ref", "give metadata.ref or Idempotency-Key")])
    if meta.ref and idempotency_key and meta.ref != idempotency_key:
        raise InvalidSubmissionError(
            [FieldProblem("ref", "metadata.ref and Idempotency-Key differ")]
        )
    _check_pdf_type(file.content_type)
    receipt, created = await ingest_one_async(
        agency=agency,
        services=services,
        deposits=deposits,
        metrics=metrics,
        meta=meta,
        ref=ref,
        data=bytes(file.data),
        filename=file.filename,
    )
    return JSONResponse(
        receipt.model_dump(mode="json"),
        status_code=201 if created else 200,
        headers=_spread(services),
    )


@router.post(
    "/documents:batch",
    response_model=BatchResult,
    responses={413: {"description": "Too large"}},
)
def submit_batch(
    agency: AgencyDep,
    services: ServicesDep,
    deposits: DepositsDep,
    metrics: MetricsDep,
    files: Annotated[list[UploadFile], File(description="The PDFs, in the order of metadata")],
    metadata: Annotated[
        str,
        Form(
            max_length=MAX_METADATA_CHARS * MAX_BATCH,
            description="JSON array, one object per file: owner, type, title, ref, issued_on",
        ),
    ],
) -> BatchResult:
    """Archive many PDFs; every item gets its own status, one bad item fails only itself."""
    items = _json(metadata)
    if not isinstance(items, list) or not items:
        raise InvalidSubmissionError([FieldProblem("metadata", "must be a non-empty JSON array")])
    if len(items) > MAX_BATCH:
        raise InvalidSubmissionError([FieldProblem("metadata", f"at most {MAX_BATCH} items")])
    if len(items) != len(files):
        raise InvalidSubmissionError(
            [FieldProblem("files", f"{len(files)} files for {len(items)} metadata items")]
        )
    results: list[BatchItemResult] = []
    for index, (raw, file) in enumerate(zip(items, files, strict=True)):
        ref = raw.get("ref") if isinstance(raw, dict) else None
        try:
            meta = _metadata_obj(raw, f"[{index}].")
            if not meta.ref:
                raise InvalidSubmissionError([FieldProblem("ref", "every item needs a ref")])
            data = _read_pdf(file, services.settings.max_pdf_bytes)
            receipt, created = ingest_one(
                agency=agency,
                services=services,
                deposits=deposits,
                metrics=metrics,
                meta=meta,
                ref=meta.ref,
                data=data,
                filename=file.filename,
            )
            results.append(
                BatchItemResult(
                    index=index, ref=meta.ref, status=201 if created else 200, receipt=receipt
                )
            )
        except Exception as exc:
            results.append(_item_problem(index, ref if isinstance(ref, str) else None, exc))
    return BatchResult(items=results)


def _item_problem(index: int, ref: str | None, exc: Exception) -> BatchItemResult:
    problem = problem_for(exc)
    if problem is None or (problem.status >= 500 and problem.retry_after is None):
        log.error("batch item %d failed", index, exc_info=exc)
        body: dict[str, object] = {
            "type": TYPE_BASE + "internal-error",
            "title": "Internal error",
            "status": 500,
        }
        return BatchItemResult(index=index, ref=ref, status=500, problem=body)
    body = {
        "type": TYPE_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": str(exc),
        **problem_extensions(exc),
    }
    if problem.retry_after is not None:
        body["retry_after"] = problem.retry_after
    return BatchItemResult(index=index, ref=ref, status=problem.status, problem=body)


@router.get("/documents/{document_id}/receipt", response_model=ReceiptOut)
def get_receipt(agency: AgencyDep, services: ServicesDep, document_id: str) -> ReceiptOut:
    """The receipt of a document this agency deposited; 404 for any other."""
    check_document_id(document_id)
    manifest = services.store.manifest(document_id)
    if manifest.metadata.agency_id != agency.subject:
        raise PackageNotFoundError(document_id)
    return ReceiptOut(**Receipt.from_manifest(manifest).to_dict())  # type: ignore[arg-type]


def _spread(services: Services) -> dict[str, str]:
    """With several worker processes that compute deposits themselves, end the connection
    after a deposit: a deposit is ~15 ms of CPU, a new loopback or LB connection ~0.2 ms, and
    the next deposit then goes to whichever worker accepts first (an idle one) instead of
    queueing on a busy one's GIL because its client's connection was accepted there. With
    ingest processes (``ingest_processes`` > 0) a worker only parses and hands over to the
    server's pool, which any worker's deposits reach, so the connection is kept: a new
    connection per deposit cost the workers ~0.35 ms of CPU and the client a TCP handshake."""
    settings = services.settings
    spread = settings.workers > 1 and settings.ingest_processes == 0
    return {"Connection": "close"} if spread else {}


def _pdf_name(filename: str | None) -> str:
    # Only the base name, and only if it is tame; the package has its own naming rules.
    name = (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return name if name.lower().endswith(".pdf") and name.isascii() else "document.pdf"
