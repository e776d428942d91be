"""Builders for retention tests: a settable clock, a selection list and committed documents
whose metadata and object lock come from that list (as ingest makes them)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta

from archive.model import PackageInput
from archive.package import build_aip
from archive.store import AipStore
from retention.records import lock_datetime
from retention.selection_list import SelectionList, parse_selection_list
from tests.support.eark import make_input


class Clock:
    """A clock tests move by hand; pass the instance where a ``clock`` is expected."""

    def __init__(self, now: datetime = datetime(2026, 1, 1, 12, tzinfo=UTC)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def set(self, day: date) -> None:
        self.now = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def selection(version: str = "t-1", **overrides: dict[str, str]) -> SelectionList:
    """A small list: attest P10Y destroy, besluit P30Y transfer, diploma keep, dossier P5Y
    from event ``closure``; keyword arguments replace or add types."""
    types: dict[str, dict[str, str]] = {
        "attest": {"retention": "P10Y", "action": "destroy"},
        "besluit": {"retention": "P30Y", "action": "transfer"},
        "diploma": {"action": "keep"},
        "dossier": {"retention": "P5Y", "trigger": "event:closure", "action": "destroy"},
    }
    types.update(overrides)
    return parse_selection_list({"version": version, "types": types}, source="test")


def commit_document(
    store: AipStore,
    selection_list: SelectionList,
    *,
    document_type: str = "attest",
    issued_on: date = date(2020, 3, 1),
    aip_id: str | None = None,
    agency_id: str = "OVO000001",
) -> PackageInput:
    """Commit one document as ingest would: the rule's terms in its metadata, its objects
    locked until the computed end (or its lower bound)."""
    terms = selection_list.terms(document_type, issued_on)
    inp = make_input(aip_id=aip_id or str(uuid.uuid4()))
    meta = dataclasses.replace(
        inp.metadata,
        document_type=document_type,
        issued_on=issued_on,
        agency_id=agency_id,
        agency_ref=f"REF-{uuid.uuid4().hex[:8]}",
        retention_until=terms.retention_until,
        retention_list_version=terms.list_version,
        retention_trigger=terms.trigger,
        retention_period=terms.period,
        retention_action=terms.action,
    )
    inp = dataclasses.replace(inp, metadata=meta)
    lock = None if terms.lock_until is None else lock_datetime(terms.lock_until)
    store.commit(build_aip(inp), retain_until=lock)
    return inp
