"""Legal holds and retention records over HTTP.

Archivists place, list, show and lift holds and read a document's retention state; the
identity recorded as placer or lifter is the verified token's ``sub``, never a field of the
request. An agency delivers the event date a retention rule counts from, for its own
documents only (any other id is 404, as elsewhere).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from archive.errors import PackageNotFoundError
from kluis.api.deps import AgencyDep, ArchivistDep, ServicesDep
from kluis.api.routers.loket import MAX_DATE, MIN_DATE, check_document_id
from retention.errors import HoldNotFoundError
from retention.holds import MAX_TEXT, Hold
from retention.state import RetentionState
from search.model import Query as IndexQuery

router = APIRouter(prefix="/v1/archive", tags=["archivist"])
agency_router = APIRouter(prefix="/v1", tags=["agency"])

MAX_IDS = 10_000


class HoldQueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(default=None, max_length=200, description="Full text")
    agency: str | None = Field(default=None, max_length=64)
    type: str | None = Field(default=None, max_length=64)
    issued_from: date | None = Field(default=None, ge=MIN_DATE, le=MAX_DATE)
    issued_to: date | None = Field(default=None, ge=MIN_DATE, le=MAX_DATE)


class HoldIn(BaseModel):
    """``POST /v1/archive/holds``: ids and/or a search, resolved to ids when placed."""

    model_config = ConfigDict(extra="forbid")

    document_ids: list[str] = Field(default_factory=list, max_length=MAX_IDS)
    query: HoldQueryIn | None = None
    reason: str = Field(min_length=1, max_length=MAX_TEXT)
    mandate: str = Field(
        min_length=1, max_length=MAX_TEXT, description="The legal authority for the hold"
    )


class LiftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class HoldOut(BaseModel):
    id: str
    reason: str
    mandate: str
    placed_by: str
    placed_at: datetime
    document_ids: list[str]
    query: dict[str, Any] | None
    active: bool
    lifted_by: str | None
    lifted_at: datetime | None
    lift_reason: str | None


class HoldList(BaseModel):
    items: list[HoldOut]


class RetentionStateOut(BaseModel):
    id: str
    type: str
    action: str
    list_version: str
    trigger_date: date | None
    retention_until: date | None
    locked_until: date | None
    holds: list[str]
    disposable_on: date | None


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: str = Field(min_length=1, max_length=64, description="The rule's event name")
    date: date


def _check_hold_id(hold_id: str) -> None:
    """Holds placed over HTTP have UUIDs; anything else is simply not found."""
    try:
        canonical = str(uuid.UUID(hold_id))
    except ValueError:
        raise HoldNotFoundError(hold_id[:64]) from None
    if canonical != hold_id:
        raise HoldNotFoundError(hold_id[:64])


def _hold(hold: Hold) -> HoldOut:
    return HoldOut(**hold.to_dict())


def _state(state: RetentionState) -> RetentionStateOut:
    return RetentionStateOut(
        id=state.document_id,
        type=state.document_type,
        action=state.action,
        list_version=state.list_version,
        trigger_date=state.trigger_date,
        retention_until=state.retention_until,
        locked_until=state.locked_until,
        holds=list(state.holds),
        disposable_on=state.disposable_on(),
    )


@router.post("/holds", response_model=HoldOut, status_code=201)
def place_hold(archivist: ArchivistDep, services: ServicesDep, body: HoldIn) -> HoldOut:
    """Place a legal hold on the given ids and/or every document the query finds now.
    Unknown ids make the whole request invalid (422, every problem listed)."""
    query = None
    if body.query is not None:
        q = body.query
        query = IndexQuery(
            text=q.q or None,
            agency_id=q.agency or None,
            document_type=q.type or None,
            issued_from=q.issued_from,
            issued_to=q.issued_to,
        )
    hold = services.holds.place(
        reason=body.reason,
        mandate=body.mandate,
        placed_by=archivist.subject,
        document_ids=body.document_ids,
        query=query,
    )
    return _hold(hold)


@router.get("/holds", response_model=HoldList)
def list_holds(
    archivist: ArchivistDep,
    services: ServicesDep,
    active: Annotated[bool, Query(description="Only holds in force")] = False,
) -> HoldList:
    """Every legal hold, oldest first."""
    return HoldList(items=[_hold(h) for h in services.holds.all(active_only=active)])


@router.get("/holds/{hold_id}", response_model=HoldOut)
def get_hold(archivist: ArchivistDep, services: ServicesDep, hold_id: str) -> HoldOut:
    _check_hold_id(hold_id)
    return _hold(services.holds.get(hold_id))


@router.post("/holds/{hold_id}/lift", response_model=HoldOut)
def lift_hold(
    archivist: ArchivistDep, services: ServicesDep, hold_id: str, body: LiftIn
) -> HoldOut:
    """Lift a hold; a document stays held while another hold applies to it."""
    _check_hold_id(hold_id)
    return _hold(services.holds.lift(hold_id, lifted_by=archivist.subject, reason=body.reason))


@router.get("/documents/{document_id}/retention", response_model=RetentionStateOut)
def get_retention(
    archivist: ArchivistDep, services: ServicesDep, document_id: str
) -> RetentionStateOut:
    """The document's retention as storage records it: rule, list version, ends, holds."""
    check_document_id(document_id)
    return _state(services.records.state(document_id))


@agency_router.post("/documents/{document_id}/retention-trigger", response_model=RetentionStateOut)
def deliver_trigger(
    agency: AgencyDep, services: ServicesDep, document_id: str, body: TriggerIn
) -> RetentionStateOut:
    """Deliver the date of the event this document's retention counts from (e.g. the
    closure of the case). Repeating the same date is harmless; another date is 409."""
    check_document_id(document_id)
    if services.store.metadata(document_id).agency_id != agency.subject:
        raise PackageNotFoundError(document_id)
    state = services.records.record_trigger(document_id, body.event, body.date, by=agency.subject)
    return _state(state)
