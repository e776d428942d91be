"""Ten simulated years of a mixed archive, with an injected clock on fs storage.

Every type of the default selection list (kluis/defaults/selectielijst.toml), documents
issued over four decades, new ones arriving every half year, legal holds placed and lifted,
and a new list edition in year 4 that lengthens one period, shortens another (the COMPLIANCE
lock keeps the longer one) and turns a destroy type into keep. Every half year the full
cycle runs: sweep, review, approval by a second archivist, execution. After each cycle every
document's fate is compared with an independent model of the list: committed exactly while
it must be kept, gone exactly from the first cycle at which it was due and not held. At the
end, each disposed document is in exactly one certificate, with the action the list says.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from archive.events import EventLog
from archive.storage.fs import FsStorage
from kluis.settings import DEFAULT_SELECTION_LIST
from retention.holds import HoldRegistry
from retention.selection_list import SelectionList, load_selection_list, parse_selection_list
from signing.devpki import ensure_dev_pki
from tests.support.disposal_world import World, make_world
from tests.support.retention_docs import Clock, commit_document

pytestmark = [pytest.mark.integration, pytest.mark.slow]
START = date(2026, 1, 1)
YEARS = 10


def _second_edition(first: SelectionList) -> SelectionList:
    types: dict[str, dict[str, str]] = {}
    for code, rule in first.rules.items():
        entry = {"title": rule.title, "action": rule.action}
        if rule.period is not None:
            entry["retention"] = str(rule.period)
        types[code] = entry
    types["brief"]["retention"] = "P8Y"  # lengthened: locks are extended
    types["attest"]["retention"] = "P6Y"  # shortened: the old lock still holds them
    types["aanslagbiljet"] = {"title": "Aanslagbiljet", "action": "keep"}
    return parse_selection_list({"version": "dev-2030-1", "types": types}, source="test")


@dataclass
class Expected:
    """The model: when a document may go, from the list alone (not from Kluis' code)."""

    issued: date
    doc_type: str
    action: str
    end: date | None
    lock: date | None
    holds: set[str] = field(default_factory=set)
    gone_at: date | None = None

    def due(self, today: date) -> bool:
        if self.action == "keep" or self.end is None or self.holds:
            return False
        first = max(self.end, self.lock or self.end)
        # The sweep finds ends strictly before today; storage allows from the first day.
        return self.end < today and first <= today


@pytest.fixture
def world(tmp_path: Path, dev_pki_template: Path) -> Iterator[World]:
    clock = Clock()
    clock.set(START)
    storage = FsStorage(tmp_path / "store", clock=clock)
    built = make_world(
        storage, clock, tmp_path / "index", ensure_dev_pki(dev_pki_template), load_selection_list(
            DEFAULT_SELECTION_LIST)
    )  # fmt: skip
    yield built
    built.close()


def _issue_dates(rng: random.Random, doc_type: str, today: date, n: int) -> Iterator[date]:
    span = 45 if doc_type in ("besluit", "vergunning") else 16
    for _ in range(n):
        yield date.fromordinal(today.toordinal() - rng.randint(0, span * 365))


def test_ten_years_of_disposal_follow_the_selection_list(world: World) -> None:
    rng = random.Random(2026)
    first = world.selection
    second = _second_edition(first)
    current = first
    model: dict[str, Expected] = {}
    holds = HoldRegistry(world.storage, world.store, EventLog(world.storage), clock=world.clock,
                         index_updater=world.updater)  # fmt: skip
    hold_ids: list[str] = []
    certificates: list[str] = []

    def add(doc_type: str, issued: date) -> None:
        # Documents follow the list in force when they are ingested.
        rule = current.rules[doc_type]
        made = commit_document(world.store, current, document_type=doc_type, issued_on=issued)
        world.reindex([made.aip_id])
        end = rule.retention_end(issued)
        model[made.aip_id] = Expected(issued, doc_type, rule.action, end, end)

    for doc_type in first.rules:
        for issued in _issue_dates(rng, doc_type, START, 5):
            add(doc_type, issued)

    for half_year in range(1, 2 * YEARS + 1):
        today = date(START.year + half_year // 2, 7 if half_year % 2 else 1, 1)
        world.clock.set(today)
        # Events of this half year.
        if half_year == 2:  # year 1: three holds on documents that are due soon
            candidates = sorted(
                (d for d, e in model.items() if e.gone_at is None and e.action != "keep"
                 and e.end is not None and e.end > today),
                key=lambda d: model[d].end or today,
            )[:3]  # fmt: skip
            for doc in candidates:
                hold = holds.place(reason="onderzoek", mandate="PV 12/34", placed_by="anna",
                                   document_ids=[doc])  # fmt: skip
                hold_ids.append(hold.hold_id)
                model[doc].holds.add(hold.hold_id)
        if half_year in (6, 12):  # lift one hold in year 3, one in year 6
            hold_id = hold_ids.pop(0)
            lifted = holds.lift(hold_id, lifted_by="bart", reason="zaak gesloten")
            for doc in lifted.document_ids:
                model[doc].holds.discard(hold_id)
        if half_year == 8:  # year 4: the new edition
            world.records.recompute(second)
            current = second
            for e in model.values():
                if e.gone_at is not None:
                    continue
                rule = second.rules[e.doc_type]
                new_end = rule.retention_end(e.issued)
                e.action = rule.action
                if (
                    new_end is not None
                    and (e.lock is None or new_end > e.lock)
                    and (new_end > today)
                ):
                    e.lock = new_end
                e.end = new_end
        for doc_type in current.rules:  # new arrivals
            for issued in _issue_dates(rng, doc_type, today, 1):
                add(doc_type, issued)
        world.index.refresh()

        swept = world.disposal.sweep("kluis", today=today)
        if swept.proposal is not None:
            pid = swept.proposal.proposal_id
            world.disposal.review(pid, "anna")
            world.disposal.approve(pid, "bart")
            result = world.disposal.execute(pid, "carla")
            certificates.append(result.certificate_id)
            world.index.refresh()

        for doc, e in model.items():
            if e.gone_at is None and e.due(today):
                e.gone_at = today
            committed = world.store.is_committed(doc)
            assert committed == (e.gone_at is None), (today, doc, e)

    disposed = {d: e for d, e in model.items() if e.gone_at is not None}
    assert len(disposed) >= 20 and len(disposed) < len(model)  # a real mix
    rows: dict[str, str] = {}
    for cid in certificates:
        cert = world.disposal.certificate(cid)
        assert world.disposal.verify(cert).ok
        for row in cert.content["disposed"]:
            assert row["document_id"] not in rows  # in exactly one certificate
            rows[row["document_id"]] = row["action"]
    assert rows == {d: e.action for d, e in disposed.items()}
    assert hold_ids, "one hold stays in force for the whole run"
    still_held = [d for d, e in model.items() if e.holds]
    assert still_held and all(world.store.is_committed(d) for d in still_held)
