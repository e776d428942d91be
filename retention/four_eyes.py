"""The four-eyes rule on disposal proposals: a review, then an approval by someone else.

``review`` creates ``review.json``; ``approve`` and ``reject`` create ``decision.json``. All
are conditional creates, so of two racing requests for one step exactly one succeeds, and
approval and rejection exclude each other. One archivist can never take both steps:

* ``approve`` reads the stored review and refuses when its archivist is the approver;
* ``review`` refuses once a decision exists, so nobody can approve first and review later;
* the review a decision is checked against is the one stored (conditional create), so a
  second review by the approver cannot replace it.

Archivist identities come from verified tokens (the caller's ``sub``), never free text.
Every step is a PREMIS event in the proposal's log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from archive.errors import ObjectExistsError
from archive.model import PremisEvent
from retention.disposal_errors import FourEyesError, ProposalStateError
from retention.proposals import Decision, ProposalStatus, ProposalStore

__all__ = ["approve", "reject", "review"]


def _event(
    store: ProposalStore,
    proposal_id: str,
    decision: Decision,
    new_id: Callable[[], str],
    detail: str,
) -> None:
    outcome: Literal["success", "failure"] = (
        "failure" if decision.kind == "rejection" else "success"
    )
    store.append_event(
        proposal_id,
        PremisEvent(new_id(), "appraisal", decision.at, outcome, detail, (decision.archivist,)),
    )


def review(
    store: ProposalStore,
    proposal_id: str,
    archivist: str,
    *,
    clock: Callable[[], datetime],
    new_id: Callable[[], str],
    note: str = "",
) -> ProposalStatus:
    """Record the first archivist's review.

    Raises:
        ProposalNotFoundError.
        ProposalStateError: already reviewed (by anyone) or already decided.
        StorageUnavailableError.
    """
    status = store.status(proposal_id)
    if status.state != "open":
        raise ProposalStateError(proposal_id, status.state, "review")
    decision = Decision("review", archivist, clock(), note, new_id())
    try:
        store.create_record(proposal_id, "review.json", decision.to_json())
    except ObjectExistsError as exc:
        raise ProposalStateError(proposal_id, "reviewed", "review") from exc
    # A decision that slipped in between our check and our write would have been checked
    # against no review (approve refuses that), so it can only be a rejection: still fine.
    _event(store, proposal_id, decision, new_id, f"disposal proposal reviewed by {archivist}")
    return store.status(proposal_id)


def approve(
    store: ProposalStore,
    proposal_id: str,
    archivist: str,
    *,
    clock: Callable[[], datetime],
    new_id: Callable[[], str],
    note: str = "",
) -> ProposalStatus:
    """Record the second archivist's approval; execution may follow.

    Raises:
        ProposalNotFoundError.
        ProposalStateError: not reviewed yet, or already approved or rejected.
        FourEyesError: the approver is the reviewer.
        StorageUnavailableError.
    """
    status = store.status(proposal_id)
    if status.decision is not None or status.state in ("executing", "executed"):
        raise ProposalStateError(proposal_id, status.state, "approve")
    if status.review is None:
        raise ProposalStateError(proposal_id, "open (not reviewed)", "approve")
    if status.review.archivist == archivist:
        raise FourEyesError(proposal_id, archivist)
    decision = Decision("approval", archivist, clock(), note, new_id())
    try:
        store.create_record(proposal_id, "decision.json", decision.to_json())
    except ObjectExistsError as exc:
        raise ProposalStateError(proposal_id, store.status(proposal_id).state, "approve") from exc
    detail = f"disposal approved by {archivist} (reviewed by {status.review.archivist})"
    _event(store, proposal_id, decision, new_id, detail)
    return store.status(proposal_id)


def reject(
    store: ProposalStore,
    proposal_id: str,
    archivist: str,
    *,
    clock: Callable[[], datetime],
    new_id: Callable[[], str],
    note: str = "",
) -> ProposalStatus:
    """Reject the proposal (any archivist, before a decision); its items become proposable
    again by a later sweep.

    Raises:
        ProposalNotFoundError.
        ProposalStateError: already approved or rejected.
        StorageUnavailableError.
    """
    status = store.status(proposal_id)
    if status.decision is not None or status.state in ("executing", "executed"):
        raise ProposalStateError(proposal_id, status.state, "reject")
    decision = Decision("rejection", archivist, clock(), note, new_id())
    try:
        store.create_record(proposal_id, "decision.json", decision.to_json())
    except ObjectExistsError as exc:
        raise ProposalStateError(proposal_id, store.status(proposal_id).state, "reject") from exc
    _event(store, proposal_id, decision, new_id, f"disposal proposal rejected by {archivist}")
    return store.status(proposal_id)
