"""One table from domain errors to HTTP problem details and CLI exit codes.

Looked up along the exception's MRO, so a subclass inherits its parent's entry unless it
has its own. Anything not in the table is an internal error: 500 without the exception
text (the traceback is logged), exit code 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from archive.errors import (
    ArchiveError,
    HostileXmlError,
    IntegrityError,
    InvalidKeyError,
    LeaseBusyError,
    LeaseLostError,
    ObjectLockedError,
    ObjectNotFoundError,
    PackageNotFoundError,
    StorageUnavailableError,
)
from ingest.errors import (
    DocumentDisposedError,
    IdempotencyConflictError,
    IngestError,
    IngestInProgressError,
    InvalidSubmissionError,
)
from kluis.auth import AuthenticationError, ForbiddenError
from kluis.errors import (
    ApiError,
    AuditUnavailableError,
    BadRequestError,
    DigestMismatchError,
    PayloadTooLargeError,
    RangeNotSatisfiableError,
    RateLimitedError,
    UnsupportedMediaTypeError,
)
from retention.disposal_errors import (
    CertificateNotFoundError,
    FourEyesError,
    ProposalNotFoundError,
    ProposalStateError,
)
from retention.errors import (
    HoldConflictError,
    HoldNotFoundError,
    InvalidHoldError,
    InvalidSelectionListError,
    InvalidTriggerError,
    RenewalConflictError,
    RenewalRejectedError,
    RetentionError,
    RetentionRecordConflictError,
    SelectionListVersionReusedError,
    TriggerAlreadyRecordedError,
)
from search.errors import IndexUnavailableError, InvalidQueryError, SearchError
from signing.errors import KeySourceError, SigningError


@dataclass(frozen=True)
class Problem:
    status: int
    slug: str
    title: str
    exit_code: int
    retry_after: int | None = None


# CLI exit codes follow sysexits where one fits: 2 bad input, 3 not found, 4 conflict,
# 75 temporary failure (retry), 77 not allowed, 78 configuration.
PROBLEMS: dict[type[Exception], Problem] = {
    InvalidSubmissionError: Problem(422, "invalid-submission", "The submission is not valid", 2),
    InvalidQueryError: Problem(400, "invalid-query", "The query is not valid", 2),
    InvalidKeyError: Problem(400, "invalid-identifier", "The identifier is not valid", 2),
    HostileXmlError: Problem(422, "rejected-xml", "The XML was rejected", 2),
    PackageNotFoundError: Problem(404, "not-found", "No such document", 3),
    ObjectNotFoundError: Problem(404, "not-found", "No such document", 3),
    IdempotencyConflictError: Problem(409, "idempotency-conflict", "Reference already used", 4),
    IngestInProgressError: Problem(409, "ingest-in-progress", "Ingest in progress", 75, 5),
    LeaseBusyError: Problem(409, "job-busy", "Another instance runs this job", 75, 30),
    LeaseLostError: Problem(409, "job-lease-lost", "The job lost its lease and stopped", 75, 30),
    ObjectLockedError: Problem(409, "object-locked", "Protected by retention or hold", 4),
    DocumentDisposedError: Problem(410, "disposed", "The document was disposed of", 4),
    ProposalNotFoundError: Problem(404, "proposal-not-found", "No such disposal proposal", 3),
    CertificateNotFoundError: Problem(404, "certificate-not-found", "No such certificate", 3),
    ProposalStateError: Problem(409, "proposal-state", "Not possible in this state", 4),
    FourEyesError: Problem(403, "four-eyes", "A second archivist must approve", 77),
    StorageUnavailableError: Problem(503, "storage-unavailable", "Storage unavailable", 75, 5),
    IndexUnavailableError: Problem(503, "index-unavailable", "Search index unavailable", 75, 5),
    KeySourceError: Problem(503, "signer-unavailable", "Signing key unavailable", 75, 30),
    AuthenticationError: Problem(401, "unauthenticated", "Authentication required", 77),
    BadRequestError: Problem(400, "bad-request", "The request is not valid", 2),
    DigestMismatchError: Problem(400, "digest-mismatch", "Content-Digest does not match", 2),
    PayloadTooLargeError: Problem(413, "too-large", "The request is too large", 2),
    UnsupportedMediaTypeError: Problem(415, "unsupported-media-type", "Unsupported type", 2),
    RangeNotSatisfiableError: Problem(416, "range-not-satisfiable", "Range not satisfiable", 2),
    RateLimitedError: Problem(429, "rate-limited", "Too many requests", 75, 1),
    AuditUnavailableError: Problem(503, "audit-unavailable", "Access log unavailable", 75, 5),
    ForbiddenError: Problem(403, "forbidden", "Not allowed", 77),
    InvalidSelectionListError: Problem(500, "configuration", "Invalid configuration", 78),
    RenewalConflictError: Problem(409, "renewal-conflict", "A newer version was stored first", 4),
    InvalidHoldError: Problem(422, "invalid-hold", "The legal hold is not valid", 2),
    HoldNotFoundError: Problem(404, "hold-not-found", "No such legal hold", 3),
    HoldConflictError: Problem(409, "hold-conflict", "Hold id used for another hold", 4),
    InvalidTriggerError: Problem(422, "invalid-trigger", "The trigger event does not fit", 2),
    TriggerAlreadyRecordedError: Problem(409, "trigger-recorded", "Trigger already recorded", 4),
    SelectionListVersionReusedError: Problem(
        409, "list-version-reused", "Selection list version already used", 4
    ),
    RetentionRecordConflictError: Problem(
        409, "retention-conflict", "Retention changed concurrently", 75, 1
    ),
    RenewalRejectedError: Problem(500, "renewal-rejected", "Renewed signature rejected", 1),
    IntegrityError: Problem(500, "integrity", "Stored data failed its integrity check", 1),
    SigningError: Problem(500, "signing-failed", "Signing failed", 1),
    ArchiveError: Problem(500, "archive-error", "Archive error", 1),
}

DOMAIN_ROOTS: tuple[type[Exception], ...] = (
    ArchiveError,
    IngestError,
    SearchError,
    SigningError,
    RetentionError,
    AuthenticationError,
    ForbiddenError,
    ApiError,
)
"""Every error Kluis raises on purpose derives from one of these."""

INTERNAL = Problem(500, "internal-error", "Internal error", 1)


def problem_for(exc: BaseException) -> Problem | None:
    """The table entry for ``exc``, or None when it is not a known domain error."""
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]
    return None


def problem_extensions(exc: BaseException) -> dict[str, object]:
    """Machine-readable details some errors carry (RFC 9457 extension members)."""
    if isinstance(exc, InvalidSubmissionError):
        return {"errors": [p.to_dict() for p in exc.problems]}
    if isinstance(exc, InvalidHoldError):
        return {"errors": [{"field": "hold", "message": p} for p in exc.problems]}
    if isinstance(exc, ObjectLockedError) and exc.retain_until is not None:
        return {"retain_until": exc.retain_until.isoformat()}
    return {}


def retry_after(exc: BaseException, problem: Problem) -> int | None:
    """Seconds for ``Retry-After``: the error's own figure when it has one."""
    own = getattr(exc, "retry_after", None)
    return own if isinstance(own, int) and own > 0 else problem.retry_after
