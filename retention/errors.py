"""Errors of the retention package."""

from __future__ import annotations


class RetentionError(Exception):
    """Root of everything the retention package raises."""


class InvalidSelectionListError(RetentionError):
    """The selection list file cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"selection list {source}: " + "; ".join(problems))
        self.source = source
        self.problems = tuple(problems)


class RenewalConflictError(RetentionError):
    """Another writer stored a newer version of the document first; nothing was stored.

    Usually a concurrent renewal won the version claim: re-read the newest version and
    decide whether it still needs renewing.
    """

    def __init__(self, document_id: str, based_on: str) -> None:
        super().__init__(
            f"document {document_id}: a newer version than {based_on} was stored concurrently"
        )
        self.document_id = document_id
        self.based_on = based_on


class RenewalRejectedError(RetentionError):
    """The renewed PDF does not validate; it was not stored."""

    def __init__(self, document_id: str, reason: str) -> None:
        super().__init__(f"document {document_id}: renewed PDF rejected: {reason}")
        self.document_id = document_id
        self.reason = reason
