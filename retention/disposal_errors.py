"""Errors of disposal: proposals, the four-eyes decisions, execution and certificates."""

from __future__ import annotations

from retention.errors import RetentionError

__all__ = [
    "CertificateNotFoundError",
    "FourEyesError",
    "ProposalNotFoundError",
    "ProposalStateError",
]


class ProposalNotFoundError(RetentionError):
    """No disposal proposal has this id."""

    def __init__(self, proposal_id: str) -> None:
        super().__init__(f"no disposal proposal {proposal_id!r}")
        self.proposal_id = proposal_id


class CertificateNotFoundError(RetentionError):
    """No destruction certificate has this id."""

    def __init__(self, certificate_id: str) -> None:
        super().__init__(f"no destruction certificate {certificate_id!r}")
        self.certificate_id = certificate_id


class ProposalStateError(RetentionError):
    """The proposal is not in a state that allows the step (e.g. approving an unreviewed
    proposal, reviewing a decided one, executing one that is not approved)."""

    def __init__(self, proposal_id: str, state: str, step: str) -> None:
        super().__init__(f"disposal proposal {proposal_id!r} is {state}: cannot {step}")
        self.proposal_id = proposal_id
        self.state = state
        self.step = step


class FourEyesError(RetentionError):
    """The same archivist tried to take both decisions of the four-eyes rule."""

    def __init__(self, proposal_id: str, archivist: str) -> None:
        super().__init__(
            f"disposal proposal {proposal_id!r} was reviewed by {archivist!r}: "
            "a different archivist must approve it"
        )
        self.proposal_id = proposal_id
        self.archivist = archivist
