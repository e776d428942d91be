"""The form of ``POST /v1/documents``: its OpenAPI description and its field checks.

The route reads its body with :mod:`kluis.api._multipart` instead of FastAPI's ``File`` and
``Form`` parameters (a large share of an API worker's CPU per deposit). What FastAPI did
with those parameters is kept here: the same request-body schema in the OpenAPI document,
and the same ``422`` answers (``RequestValidationError``, rendered by the problem handlers)
for a missing, mistyped or too long field.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError

from kluis.api._multipart import Part

MAX_METADATA_CHARS = 16_384

DOCUMENT_FORM_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "title": "Body_submit_document_v1_documents_post",
                    "type": "object",
                    "required": ["file", "metadata"],
                    "properties": {
                        "file": {
                            "title": "File",
                            "type": "string",
                            "contentMediaType": "application/octet-stream",
                            "description": "The PDF (application/pdf)",
                        },
                        "metadata": {
                            "title": "Metadata",
                            "type": "string",
                            "maxLength": MAX_METADATA_CHARS,
                            "description": "JSON: owner, type, title, ref, issued_on",
                        },
                    },
                }
            }
        },
    }
}


def _error(name: str, kind: str, msg: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("body", name), "msg": msg, "input": None}


def _absent(part: Part | None) -> bool:
    # FastAPI's rule: an empty browser file input (no filename, no bytes) is no value.
    return part is None or (part.filename == "" and not part.data)


def _file_problem(part: Part | None) -> dict[str, Any] | None:
    if part is None or _absent(part):
        return _error("file", "missing", "Field required")
    if part.filename is None:
        msg = "Value error, Expected UploadFile, received: <class 'str'>"
        return _error("file", "value_error", msg)
    return None


def _metadata(part: Part | None) -> tuple[str, dict[str, Any] | None]:
    if part is None or _absent(part):
        return "", _error("metadata", "missing", "Field required")
    if part.filename is not None:
        return "", _error("metadata", "string_type", "Input should be a valid string")
    text = part.text()
    if not text:  # an empty form field is no value either
        return "", _error("metadata", "missing", "Field required")
    if len(text) > MAX_METADATA_CHARS:
        msg = f"String should have at most {MAX_METADATA_CHARS} characters"
        return "", _error("metadata", "string_too_long", msg)
    return text, None


def document_parts(parts: dict[str, Part]) -> tuple[Part, str]:
    """The PDF part and the metadata text.

    Raises: RequestValidationError listing every field problem (422).
    """
    file = parts.get("file")
    metadata, metadata_problem = _metadata(parts.get("metadata"))
    problems = [p for p in (_file_problem(file), metadata_problem) if p is not None]
    if problems or file is None:
        raise RequestValidationError(problems)
    return file, metadata
