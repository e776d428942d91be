"""What an agency submits with a PDF, and its validation into archive metadata."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date

from archive.model import DocumentMetadata, RetentionTerms
from ingest.errors import FieldProblem, InvalidSubmissionError
from ingest.owners import InvalidOwnerNumber, parse_owner

_AGENCY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
_PDF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.pdf$")
MAX_TITLE = 500
MAX_REF = 200

RetentionRule = Callable[[str, date], RetentionTerms]
"""(document_type, issued_on) -> the selection-list terms: list version, trigger, action,
computed end and object-lock date (the wiring passes ``SelectionList.terms``)."""


@dataclass(frozen=True)
class Submission:
    """Metadata as received from the CLI or the API, not yet validated."""

    agency_id: str
    owner: str
    document_type: str
    title: str
    agency_ref: str
    issued_on: date | None = None
    """Defaults to the ingest date."""
    file_name: str = "document.pdf"


def _printable(value: str) -> bool:
    return value.isprintable() and value == value.strip()


def validate_submission(
    sub: Submission,
    *,
    known_types: Collection[str],
    retention: RetentionRule,
    today: date,
) -> DocumentMetadata:
    """Check every field and return the archive metadata; report all problems at once.

    Raises:
        InvalidSubmissionError: one FieldProblem per bad field.
    """
    problems: list[FieldProblem] = []
    if not _AGENCY.match(sub.agency_id or ""):
        problems.append(FieldProblem("agency", "2-64 letters, digits, '.', '_' or '-'"))
    try:
        owner = parse_owner(sub.owner)
    except InvalidOwnerNumber as exc:
        problems.append(FieldProblem("owner", str(exc)))
        owner = None
    if sub.document_type not in known_types:
        known = ", ".join(sorted(known_types))
        problems.append(
            FieldProblem("type", f"unknown document type {sub.document_type!r}; known: {known}")
        )
    if not sub.title or len(sub.title) > MAX_TITLE or not _printable(sub.title):
        problems.append(FieldProblem("title", f"1-{MAX_TITLE} printable characters"))
    if not sub.agency_ref or len(sub.agency_ref) > MAX_REF or not _printable(sub.agency_ref):
        problems.append(FieldProblem("ref", f"1-{MAX_REF} printable characters"))
    issued_on = sub.issued_on or today
    if issued_on > today:
        problems.append(FieldProblem("issued_on", "lies in the future"))
    if not _PDF_NAME.match(sub.file_name):
        problems.append(
            FieldProblem("file_name", "letters, digits, '.', '_' or '-', ending in .pdf")
        )
    if problems or owner is None:
        raise InvalidSubmissionError(problems)
    terms = retention(sub.document_type, issued_on)
    return DocumentMetadata(
        owner_id=owner.id,
        owner_kind=owner.kind,
        agency_id=sub.agency_id,
        document_type=sub.document_type,
        title=sub.title,
        issued_on=issued_on,
        agency_ref=sub.agency_ref,
        retention_until=terms.retention_until,
        retention_list_version=terms.list_version,
        retention_trigger=terms.trigger,
        retention_period=terms.period,
        retention_action=terms.action,
    )
