"""Archivists run disposal: sweep, the four-eyes decisions, execution, certificates.

The archivist is the verified token's ``sub``: the four-eyes rule compares those, so one
person cannot review and approve, whatever the requests say. Handlers are ``def`` (run in
the thread pool): signing and storage are synchronous, and signing runs ``asyncio.run``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from kluis.api.deps import ArchivistDep, ServicesDep
from retention.proposals import ProposalStatus

router = APIRouter(prefix="/v1/archive", tags=["disposal"])

IdPath = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=1000, description="A remark kept with the step")


class ProposalOut(BaseModel):
    id: str
    state: str
    created_at: datetime
    proposed_by: str
    due_before: date
    items: int
    counts: dict[str, int] = Field(description="Items per '<type>:<action>'")
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    decision: str | None = Field(default=None, description="approval or rejection")
    decided_by: str | None = None
    decided_at: datetime | None = None
    certificate_id: str | None = None


class ProposalItemOut(BaseModel):
    """An item; type, action, end and list version are null for an unconfirmed item (an
    index-only sweep): execution reads them from storage."""

    document_id: str
    type: str | None = None
    action: str | None = None
    retention_until: date | None = None
    list_version: str | None = None


class ProposalItemsPage(BaseModel):
    items: list[ProposalItemOut]
    next_offset: int | None = None


class SweepOut(BaseModel):
    proposal: ProposalOut | None = Field(description="null when nothing was due")
    candidates: int
    already_proposed: int
    not_due: int


class ExecutionOut(BaseModel):
    proposal_id: str
    certificate_id: str
    destroyed: int
    transferred: int
    skipped: int


def proposal_out(status: ProposalStatus) -> ProposalOut:
    p = status.proposal
    return ProposalOut(
        id=p.proposal_id,
        state=status.state,
        created_at=p.created_at,
        proposed_by=p.proposed_by,
        due_before=p.due_before,
        items=p.item_count,
        counts=dict(p.counts),
        reviewed_by=status.review.archivist if status.review else None,
        reviewed_at=status.review.at if status.review else None,
        decision=status.decision.kind if status.decision else None,
        decided_by=status.decision.archivist if status.decision else None,
        decided_at=status.decision.at if status.decision else None,
        certificate_id=status.certificate_id,
    )


@router.post("/disposal/sweep", response_model=SweepOut)
def sweep(
    archivist: ArchivistDep,
    services: ServicesDep,
    confirm: Annotated[
        bool,
        Query(description="false: propose the index's candidates unconfirmed (large backlogs)"),
    ] = True,
) -> SweepOut:
    """Propose every document whose retention ended and that is not held (each confirmed
    against storage unless ``confirm=false``); documents already in an open proposal are
    left out. Execution checks every item against storage in any case."""
    result = services.disposal.sweep(archivist.subject, confirm=confirm)
    proposal = None
    if result.proposal is not None:
        proposal = proposal_out(services.disposal.status(result.proposal.proposal_id))
    return SweepOut(
        proposal=proposal,
        candidates=result.candidates,
        already_proposed=result.already_proposed,
        not_due=result.not_due,
    )


@router.get("/disposal/proposals", response_model=list[ProposalOut])
def list_proposals(archivist: ArchivistDep, services: ServicesDep) -> list[ProposalOut]:
    """Every disposal proposal with its state."""
    return [proposal_out(s) for s in services.disposal.statuses()]


@router.get("/disposal/proposals/{proposal_id}", response_model=ProposalOut)
def get_proposal(
    archivist: ArchivistDep, services: ServicesDep, proposal_id: IdPath
) -> ProposalOut:
    """One proposal: its state, counts per type and action, and who decided what."""
    return proposal_out(services.disposal.status(proposal_id))


@router.get("/disposal/proposals/{proposal_id}/items", response_model=ProposalItemsPage)
def proposal_items(
    archivist: ArchivistDep,
    services: ServicesDep,
    proposal_id: IdPath,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ProposalItemsPage:
    """The proposal's documents, in proposal order (ids, types, actions, ends: no personal
    data)."""
    page: list[ProposalItemOut] = []
    more = False
    for n, item in enumerate(services.disposal.items(proposal_id)):
        if n < offset:
            continue
        if len(page) == limit:
            more = True
            break
        page.append(
            ProposalItemOut(
                document_id=item.document_id,
                type=item.document_type,
                action=item.action,
                retention_until=item.retention_until,
                list_version=item.list_version,
            )
        )
    return ProposalItemsPage(items=page, next_offset=offset + limit if more else None)


@router.post("/disposal/proposals/{proposal_id}/review", response_model=ProposalOut)
def review(
    archivist: ArchivistDep,
    services: ServicesDep,
    proposal_id: IdPath,
    body: Annotated[DecisionIn | None, Body()] = None,
) -> ProposalOut:
    """First pair of eyes. 409 when already reviewed or decided."""
    note = body.note if body else ""
    return proposal_out(services.disposal.review(proposal_id, archivist.subject, note))


@router.post("/disposal/proposals/{proposal_id}/approve", response_model=ProposalOut)
def approve(
    archivist: ArchivistDep,
    services: ServicesDep,
    proposal_id: IdPath,
    body: Annotated[DecisionIn | None, Body()] = None,
) -> ProposalOut:
    """Second pair of eyes: 403 ``four-eyes`` when the caller reviewed it, 409 when it is
    not reviewed yet or already decided."""
    note = body.note if body else ""
    return proposal_out(services.disposal.approve(proposal_id, archivist.subject, note))


@router.post("/disposal/proposals/{proposal_id}/reject", response_model=ProposalOut)
def reject(
    archivist: ArchivistDep,
    services: ServicesDep,
    proposal_id: IdPath,
    body: Annotated[DecisionIn | None, Body()] = None,
) -> ProposalOut:
    """Reject (before a decision); a later sweep may propose its documents again."""
    note = body.note if body else ""
    return proposal_out(services.disposal.reject(proposal_id, archivist.subject, note))


@router.post("/disposal/proposals/{proposal_id}/execute", response_model=ExecutionOut)
def execute(archivist: ArchivistDep, services: ServicesDep, proposal_id: IdPath) -> ExecutionOut:
    """Execute an approved proposal (or finish an interrupted execution): every document is
    re-checked against storage first. Returns the destruction certificate's id."""
    result = services.disposal.execute(proposal_id, archivist.subject)
    return ExecutionOut(
        proposal_id=result.proposal_id,
        certificate_id=result.certificate_id,
        destroyed=result.destroyed,
        transferred=result.transferred,
        skipped=result.skipped,
    )


@router.get(
    "/certificates/{certificate_id}",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def certificate(archivist: ArchivistDep, services: ServicesDep, certificate_id: IdPath) -> Response:
    """The destruction certificate exactly as stored and signed (canonical JSON)."""
    stored = services.disposal.certificate(certificate_id)
    return Response(stored.document, media_type="application/json")


@router.get(
    "/certificates/{certificate_id}/signature",
    response_class=Response,
    responses={200: {"content": {"application/pkcs7-signature": {}}}},
)
def certificate_signature(
    archivist: ArchivistDep, services: ServicesDep, certificate_id: IdPath
) -> Response:
    """The certificate's detached CMS (CAdES) signature, DER. Check it with e.g.
    ``openssl cms -verify -binary -inform DER -in SIG -content CERT.json -CAfile ROOTS``."""
    stored = services.disposal.certificate(certificate_id)
    return Response(
        stored.signature,
        media_type="application/pkcs7-signature",
        headers={"Content-Disposition": f'attachment; filename="{certificate_id}.p7s"'},
    )
