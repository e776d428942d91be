"""Agencies submit documents."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ingest.errors import FieldProblem, InvalidSubmissionError
from ingest.submission import Submission
from kluis.api.deps import AgencyDep, ServicesDep
from kluis.api.schemas import DocumentMetadataIn, ReceiptOut

router = APIRouter(prefix="/v1", tags=["agency"])


def _metadata(raw: str) -> DocumentMetadataIn:
    try:
        return DocumentMetadataIn.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        problems = [FieldProblem("metadata", "must be a JSON object: owner, type, title, ref")]
        if isinstance(exc, ValidationError):
            problems = [
                FieldProblem(".".join(str(p) for p in e["loc"]) or "metadata", e["msg"])
                for e in exc.errors()
            ]
        raise InvalidSubmissionError(problems) from exc


@router.post(
    "/documents",
    status_code=201,
    response_model=ReceiptOut,
    responses={200: {"model": ReceiptOut, "description": "A retry: the earlier receipt"}},
)
def submit_document(
    agency: AgencyDep,
    services: ServicesDep,
    file: Annotated[UploadFile, File(description="The PDF")],
    metadata: Annotated[str, Form(description="JSON: owner, type, title, ref, issued_on")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JSONResponse:
    """Archive one PDF for one owner. Retrying with the same reference is safe."""
    meta = _metadata(metadata)
    limit = services.settings.max_pdf_bytes
    data = file.file.read(limit + 1)
    ref = meta.ref or idempotency_key
    if ref is None:
        raise InvalidSubmissionError([FieldProblem("ref", "give metadata.ref or Idempotency-Key")])
    if meta.ref and idempotency_key and meta.ref != idempotency_key:
        raise InvalidSubmissionError(
            [FieldProblem("ref", "metadata.ref and Idempotency-Key differ")]
        )
    submission = Submission(
        agency_id=agency.subject,
        owner=meta.owner,
        document_type=meta.type,
        title=meta.title,
        agency_ref=ref,
        issued_on=meta.issued_on,
        file_name=_pdf_name(file.filename),
    )
    result = services.ingestor.ingest(submission, data)
    body = ReceiptOut(**result.receipt.to_dict())  # type: ignore[arg-type]
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if result.created else 200)


def _pdf_name(filename: str | None) -> str:
    # Only the base name, and only if it is tame; the package has its own naming rules.
    name = (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return name if name.lower().endswith(".pdf") and name.isascii() else "document.pdf"
