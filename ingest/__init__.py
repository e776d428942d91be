"""Ingest: validate submissions, sign, package, store and index; receipts and idempotency."""

from ingest.errors import (
    FieldProblem,
    IdempotencyConflictError,
    IngestError,
    IngestInProgressError,
    InvalidSubmissionError,
)
from ingest.pipeline import IngestLimits, Ingestor, IngestResult
from ingest.receipt import Receipt
from ingest.submission import Submission

__all__ = [
    "FieldProblem",
    "IdempotencyConflictError",
    "IngestError",
    "IngestInProgressError",
    "IngestLimits",
    "IngestResult",
    "Ingestor",
    "InvalidSubmissionError",
    "Receipt",
    "Submission",
]
