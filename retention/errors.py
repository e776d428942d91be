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


class SelectionListVersionReusedError(RetentionError):
    """A selection list carries a version string already used for other rules: every new
    edition of the list needs a new version string."""

    def __init__(self, version: str) -> None:
        super().__init__(
            f"selection list version {version!r} was already used for other rules; "
            "give the new edition a new version string"
        )
        self.version = version


class InvalidTriggerError(RetentionError):
    """A delivered trigger event does not fit the document's rule (another event name, a
    rule that counts from the issue date, or a date before the issue date)."""

    def __init__(self, document_id: str, reason: str) -> None:
        super().__init__(f"document {document_id}: {reason}")
        self.document_id = document_id
        self.reason = reason


class TriggerAlreadyRecordedError(RetentionError):
    """The event date of this document was delivered before, with another date; a
    recorded trigger date is final."""

    def __init__(self, document_id: str, event: str, recorded: str) -> None:
        super().__init__(
            f"document {document_id}: event {event!r} was already recorded on {recorded}"
        )
        self.document_id = document_id
        self.event = event
        self.recorded = recorded


class RetentionRecordConflictError(RetentionError):
    """Another writer appended a retention record for the document at the same time."""

    def __init__(self, document_id: str) -> None:
        super().__init__(
            f"document {document_id}: a retention record was written concurrently; retry"
        )
        self.document_id = document_id
        self.retry_after = 1


class InvalidHoldError(RetentionError):
    """A legal hold request is not valid; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid legal hold: " + "; ".join(problems))
        self.problems = tuple(problems)


class HoldNotFoundError(RetentionError):
    """No legal hold has this id."""

    def __init__(self, hold_id: str) -> None:
        super().__init__(f"no legal hold {hold_id}")
        self.hold_id = hold_id


class HoldConflictError(RetentionError):
    """The hold id is in use for another request (a retry must repeat the same request)."""

    def __init__(self, hold_id: str) -> None:
        super().__init__(f"legal hold {hold_id} exists with other contents")
        self.hold_id = hold_id
