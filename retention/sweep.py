"""The disposal sweep: propose every document whose retention ended and that is not held.

Candidates come from the index (``retention_until`` before today, not on hold, not
disposed: one keyset-paged query), because only the index can find them among millions
without reading every package. Each candidate is then confirmed against storage through
:class:`RetentionFacts` (the index may lag or be stale): only documents storage says are due
today, not held, with action ``destroy`` or ``transfer`` are proposed, with the type, action,
retention end and list version storage records. Documents already in an open proposal are
left out. Execution checks every item against storage once more.

The confirmations run in a thread pool: storage round trips (S3) dominate, not CPU.

``confirm=False`` is the index-only sweep for large backlogs: the proposal lists the ids
the index returned (minus those in open proposals) without reading storage, so a million
indexed documents give a proposal in seconds (``bench/retention.py``); its items are
*unconfirmed* (no type, action or end yet). Nothing is lost in safety: execution checks
every item against storage either way, and skips what storage says is not due; reviewers
see only counts ``unconfirmed`` instead of counts per type and action.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime

from archive.errors import PackageNotFoundError
from archive.model import PremisEvent
from retention.proposals import Proposal, ProposalItem, ProposalStore
from retention.state import RetentionFacts
from search.base import Index, stream_retention_due

__all__ = ["SweepResult", "sweep"]


@dataclass(frozen=True)
class SweepResult:
    proposal: Proposal | None
    """None when nothing was due."""
    candidates: int
    """Ids the index returned."""
    already_proposed: int
    not_due: int
    """Candidates storage says are not due (held, kept, later end, gone): the index lagged."""


def _confirm(facts: RetentionFacts, document_id: str, today: date) -> ProposalItem | None:
    try:
        state = facts.state(document_id)
    except PackageNotFoundError:
        return None
    if state.action == "keep" or not state.is_due(today) or state.retention_until is None:
        return None
    return ProposalItem(
        document_id, state.document_type, state.action, state.retention_until, state.list_version
    )


def _candidates(
    index: Index, today: date, skip: set[str], counter: list[int], page_size: int
) -> Iterator[str]:
    for page in stream_retention_due(index, today, page_size=page_size):
        for document_id in page.ids:
            counter[0] += 1
            if document_id in skip:
                counter[1] += 1
                continue
            yield document_id


def _ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[str], ProposalItem | None], ids: Iterable[str]
) -> Iterator[ProposalItem | None]:
    """``pool.map`` with a bounded window, so a million ids never queue at once."""
    batch: list[str] = []
    for document_id in ids:
        batch.append(document_id)
        if len(batch) >= 512:
            yield from pool.map(fn, batch)
            batch = []
    if batch:
        yield from pool.map(fn, batch)


def sweep(
    index: Index,
    facts: RetentionFacts,
    today: date,
    *,
    proposals: ProposalStore,
    proposed_by: str,
    clock: Callable[[], datetime],
    new_id: Callable[[], str],
    workers: int = 8,
    page_size: int = 10_000,
    confirm: bool = True,
    progress: Callable[[int], None] | None = None,
) -> SweepResult:
    """Find the due documents and store them as one new proposal.

    ``confirm``: check each candidate against storage (default) or propose the index's
    candidates unconfirmed (see the module docstring). ``progress`` is called with the
    number of candidates handled since the last call.

    Raises:
        IndexUnavailableError, StorageUnavailableError.
    """
    skip = proposals.open_item_ids()
    counter = [0, 0]  # candidates, already proposed
    not_due = 0

    def confirmed(pool: ThreadPoolExecutor) -> Iterator[ProposalItem]:
        nonlocal not_due
        ids = _candidates(index, today, skip, counter, page_size)
        if not confirm:
            for document_id in ids:
                if progress is not None:
                    progress(1)
                yield ProposalItem(document_id)
            return
        for item in _ordered_map(pool, lambda d: _confirm(facts, d, today), ids):
            if progress is not None:
                progress(1)
            if item is None:
                not_due += 1
            else:
                yield item

    proposal_id = new_id()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as pool:
        items = confirmed(pool)
        first = next(items, None)
        if first is None:
            return SweepResult(None, counter[0], counter[1], not_due)
        created_at = clock()
        proposal = proposals.create(
            proposal_id,
            created_at=created_at,
            proposed_by=proposed_by,
            due_before=today,
            items=_prepend(first, items),
        )
    detail = f"{proposal.item_count} documents proposed for disposal (due before {today})"
    proposals.append_event(
        proposal_id,
        PremisEvent(new_id(), "appraisal", created_at, "success", detail, (proposed_by,)),
    )
    return SweepResult(proposal, counter[0], counter[1], not_due)


def _prepend(first: ProposalItem, rest: Iterator[ProposalItem]) -> Iterator[ProposalItem]:
    yield first
    yield from rest
