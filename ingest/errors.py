"""Errors of the ingest package."""

from __future__ import annotations

from dataclasses import dataclass


class IngestError(Exception):
    """Root of everything the ingest package raises."""


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a submission, named by the field it concerns."""

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidSubmissionError(IngestError):
    """The submission (PDF or metadata) is not acceptable; nothing was stored."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems)
        super().__init__(f"invalid submission: {summary}")
        self.problems = tuple(problems)


class IdempotencyConflictError(IngestError):
    """The agency reference was used before for a different document."""

    def __init__(self, agency_id: str, agency_ref: str, aip_id: str) -> None:
        super().__init__(
            f"reference {agency_ref!r} of agency {agency_id} was already used for another "
            f"document (package {aip_id}); use a new reference for a new document"
        )
        self.agency_id = agency_id
        self.agency_ref = agency_ref
        self.aip_id = aip_id


class IngestInProgressError(IngestError):
    """Another ingest of the same agency reference has not finished yet; retry later."""

    def __init__(self, agency_id: str, agency_ref: str, retry_after: int) -> None:
        super().__init__(
            f"an ingest of reference {agency_ref!r} of agency {agency_id} is in progress; "
            f"retry in {retry_after} s"
        )
        self.agency_id = agency_id
        self.agency_ref = agency_ref
        self.retry_after = retry_after


class DocumentDisposedError(IngestError):
    """The agency reference names a document that was disposed of under the selection list
    (destroyed or transferred): it is gone for good and is not archived again."""

    def __init__(self, agency_id: str, agency_ref: str, aip_id: str) -> None:
        super().__init__(
            f"reference {agency_ref!r} of agency {agency_id} names document {aip_id}, which "
            "was disposed of after its retention ended; it is not archived again"
        )
        self.agency_id = agency_id
        self.agency_ref = agency_ref
        self.aip_id = aip_id
