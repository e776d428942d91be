"""Legal holds (MoReq2010 disposal holds): placed on documents, lifted explicitly.

A hold names explicit document ids (a search query is resolved to ids when the hold is
placed, and the ids are what is recorded), a reason and a mandate (the legal authority), and
who placed it when. It is lifted explicitly: who, when, why. A held document is never
disposed: it carries the S3 legal hold on every object of every version, and disposal's
:meth:`retention.records.RetentionRecords.state` reports the hold from storage.

Storage (see :mod:`retention.layout`): the hold document ``holds/<id>/placed.json`` and
``holds/<id>/lifted.json`` (append-only, conditional creates), per-document markers
``held/<document id>/<hold id>`` for fast checks, and ``holds-open/<id>`` while a placement
or lifting is being applied.

Crash-safe order. Placing: open marker, hold record, then per document its marker, the
S3 legal hold on its objects, a PREMIS event, the index; finally the open marker goes.
Until then :func:`retention.projection.holds_in_force` counts the hold for every document
it names, so a crash never leaves a named document disposable. Lifting reverses it: open
marker, lifted record, then per document its marker removed, the S3 legal hold released
only when no other hold remains, a PREMIS event, the index. Every step is idempotent:
repeating a placement or lifting (same id) after a crash finishes it, and :meth:`resume`
finishes every interrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from archive.errors import (
    InvalidKeyError,
    ObjectExistsError,
    ObjectNotFoundError,
    PackageNotFoundError,
)
from archive.events import EventLog
from archive.model import PremisEvent
from archive.storage.base import Storage
from archive.store import AipStore
from retention import layout
from retention.errors import HoldConflictError, HoldNotFoundError, InvalidHoldError
from retention.projection import IndexUpdater, holds_in_force, read_json
from retention.records import POLICY_EVENT_TYPE, in_order
from search.base import Index
from search.model import Query

__all__ = ["Hold", "HoldRegistry", "MAX_HOLD_DOCUMENTS"]

MAX_HOLD_DOCUMENTS = 100_000
"""A hold names at most this many documents (a query matching more is refused)."""
MAX_TEXT = 2000
_EVENT_NS = uuid.UUID("0b7c6f4e-3d2a-4c1b-9e8f-5a6b7c8d9e0f")


@dataclass(frozen=True)
class Hold:
    hold_id: str
    reason: str
    mandate: str
    """The legal authority, e.g. a court order or an inspection's reference."""
    placed_by: str
    placed_at: datetime
    document_ids: tuple[str, ...]
    query: dict[str, Any] | None = None
    """The search the ids were resolved from, as recorded (None: ids given directly)."""
    lifted_by: str | None = None
    lifted_at: datetime | None = None
    lift_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.lifted_at is None

    def placed_json(self) -> bytes:
        body = {
            "hold_id": self.hold_id,
            "reason": self.reason,
            "mandate": self.mandate,
            "placed_by": self.placed_by,
            "placed_at": self.placed_at.isoformat(),
            "document_ids": list(self.document_ids),
            "query": self.query,
        }
        return json.dumps(body, sort_keys=True, ensure_ascii=False).encode()

    def lifted_json(self) -> bytes:
        body = {
            "hold_id": self.hold_id,
            "lifted_by": self.lifted_by,
            "lifted_at": None if self.lifted_at is None else self.lifted_at.isoformat(),
            "reason": self.lift_reason,
        }
        return json.dumps(body, sort_keys=True, ensure_ascii=False).encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.hold_id,
            "reason": self.reason,
            "mandate": self.mandate,
            "placed_by": self.placed_by,
            "placed_at": self.placed_at.isoformat(),
            "document_ids": list(self.document_ids),
            "query": self.query,
            "active": self.active,
            "lifted_by": self.lifted_by,
            "lifted_at": None if self.lifted_at is None else self.lifted_at.isoformat(),
            "lift_reason": self.lift_reason,
        }


def _query_record(query: Query) -> dict[str, Any]:
    fields = {
        "text": query.text,
        "agency_id": query.agency_id,
        "document_type": query.document_type,
        "agency_ref": query.agency_ref,
        "issued_from": None if query.issued_from is None else query.issued_from.isoformat(),
        "issued_to": None if query.issued_to is None else query.issued_to.isoformat(),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HoldRegistry:
    """Places, lifts, lists and resumes legal holds (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        store: AipStore,
        events: EventLog,
        *,
        clock: Callable[[], datetime] = _utcnow,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        index: Index | None = None,
        index_updater: IndexUpdater | None = None,
        workers: int = 4,
    ) -> None:
        """``workers``: threads applying a hold to its documents (each is a legal-hold
        change per object: waiting on storage)."""
        self._storage = storage
        self._store = store
        self._events = events
        self._clock = clock
        self._new_id = new_id
        self._index = index
        self._updater = index_updater
        self._workers = workers

    # -- placing ------------------------------------------------------------------------------

    def resolve(self, query: Query) -> list[str]:
        """The ids of every indexed document matching ``query`` (the owner filter is the
        caller's business: archivists search without it).

        Raises:
            InvalidHoldError: no index, or more than MAX_HOLD_DOCUMENTS matches.
            InvalidQueryError, IndexUnavailableError.
        """
        if self._index is None:
            raise InvalidHoldError(["a hold by query needs the search index"])
        self._index.refresh()  # include what was just ingested, where this process can
        found: list[str] = []
        cursor: str | None = None
        while True:
            page = self._index.search(
                Query(
                    text=query.text,
                    agency_id=query.agency_id,
                    document_type=query.document_type,
                    agency_ref=query.agency_ref,
                    issued_from=query.issued_from,
                    issued_to=query.issued_to,
                    owner_key=query.owner_key,
                    sort="newest",
                    limit=100,
                    cursor=cursor,
                )
            )
            found.extend(h.aip_id for h in page.hits)
            if len(found) > MAX_HOLD_DOCUMENTS:
                raise InvalidHoldError([f"the query matches more than {MAX_HOLD_DOCUMENTS}"])
            if page.next_cursor is None or not page.hits:
                return sorted(set(found))
            cursor = page.next_cursor

    def place(
        self,
        *,
        reason: str,
        mandate: str,
        placed_by: str,
        document_ids: Sequence[str] = (),
        query: Query | None = None,
        hold_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Hold:
        """Place a hold on ``document_ids`` and/or the documents ``query`` finds now.

        With ``hold_id`` of a hold placed before with the same ids, reason and mandate (a
        retry after a crash or timeout), the placement is finished and returned.

        Raises:
            InvalidHoldError: no reason, mandate or documents; unknown document ids.
            HoldConflictError: ``hold_id`` exists for another request.
            InvalidQueryError, IndexUnavailableError, StorageUnavailableError.
        """
        problems = []
        if not reason.strip() or len(reason) > MAX_TEXT:
            problems.append(f"a reason (1-{MAX_TEXT} characters) is required")
        if not mandate.strip() or len(mandate) > MAX_TEXT:
            problems.append(f"a mandate (1-{MAX_TEXT} characters) is required")
        if not placed_by:
            problems.append("who places the hold is required")
        ids = set(document_ids)
        if query is not None:
            ids |= set(self.resolve(query))
        if not ids:
            problems.append("no documents: give ids or a query that matches")
        if len(ids) > MAX_HOLD_DOCUMENTS:
            problems.append(f"at most {MAX_HOLD_DOCUMENTS} documents per hold")
        unknown = sorted(i for i in ids if not self._is_document(i))
        if unknown:
            shown = ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else "")
            problems.append(f"{len(unknown)} unknown document id(s): {shown}")
        if problems:
            raise InvalidHoldError(problems)
        hold = Hold(
            hold_id=hold_id or self._new_id(),
            reason=reason,
            mandate=mandate,
            placed_by=placed_by,
            placed_at=self._clock(),
            document_ids=tuple(sorted(ids)),
            query=None if query is None else _query_record(query),
        )
        self._ensure(layout.open_key(hold.hold_id), b"place")
        try:
            self._put_once(layout.hold_key(hold.hold_id, "placed.json"), hold.placed_json())
        except ObjectExistsError:
            earlier = self.get(hold.hold_id)
            same = (earlier.document_ids, earlier.reason, earlier.mandate, earlier.placed_by)
            if same != (hold.document_ids, hold.reason, hold.mandate, hold.placed_by):
                # The open marker may be ours; left in place it only makes resume() re-apply
                # the earlier hold, which is idempotent.
                raise HoldConflictError(hold.hold_id) from None
            hold = earlier
        if hold.active:
            self._apply_placement(hold, progress)
        return hold

    def _is_document(self, document_id: str) -> bool:
        """A committed first version (later versions are not documents of their own)."""
        try:
            return self._store.document_of(document_id) == document_id
        except (PackageNotFoundError, InvalidKeyError):
            return False

    def _place_one(self, hold: Hold, document_id: str) -> str | None:
        self._ensure(layout.held_key(document_id, hold.hold_id), hold.hold_id.encode())
        try:
            self._store.set_document_legal_hold(document_id, True)
        except PackageNotFoundError:
            return None  # destroyed since it was named (before the hold existed)
        self._event(hold, document_id, "placed")
        return document_id

    def _apply_placement(self, hold: Hold, progress: Callable[[int], None] | None) -> None:
        batch: list[str] = []
        done = in_order(lambda d: self._place_one(hold, d), hold.document_ids, self._workers)
        for n, document_id in enumerate(done, 1):
            if document_id is not None:
                batch.append(document_id)
            if len(batch) >= 200:
                self._update_index(batch)
                batch = []
            if progress is not None:
                progress(n)
        self._update_index(batch)
        self._storage.delete(layout.open_key(hold.hold_id))

    # -- lifting ------------------------------------------------------------------------------

    def lift(
        self,
        hold_id: str,
        *,
        lifted_by: str,
        reason: str,
        progress: Callable[[int], None] | None = None,
    ) -> Hold:
        """Lift a hold. Each document keeps its S3 legal hold while another hold applies.
        Lifting a lifted hold finishes an interrupted lifting and returns it as recorded.

        Raises:
            HoldNotFoundError, InvalidHoldError (no reason or who), StorageUnavailableError,
            IndexUnavailableError.
        """
        hold = self.get(hold_id)
        if hold.active:
            problems = []
            if not reason.strip() or len(reason) > MAX_TEXT:
                problems.append(f"a reason (1-{MAX_TEXT} characters) is required")
            if not lifted_by:
                problems.append("who lifts the hold is required")
            if problems:
                raise InvalidHoldError(problems)
            if self._storage.exists(layout.open_key(hold_id)):
                self._apply_placement(hold, None)  # finish an interrupted placement first
            lifted = dataclasses.replace(
                hold, lifted_by=lifted_by, lifted_at=self._clock(), lift_reason=reason
            )
            self._ensure(layout.open_key(hold_id), b"lift")
            try:
                self._put_once(layout.hold_key(hold_id, "lifted.json"), lifted.lifted_json())
            except ObjectExistsError:
                lifted = self.get(hold_id)  # a concurrent lifting won: finish it
            hold = lifted
        self._apply_lifting(hold, progress)
        return hold

    def _lift_one(self, hold: Hold, document_id: str) -> bool:
        """Returns whether the document still exists (a destroyed one has no events)."""
        self._storage.delete(layout.held_key(document_id, hold.hold_id))
        if not self._store.is_committed(document_id):
            return False
        if not holds_in_force(self._storage, document_id):
            self._store.set_document_legal_hold(document_id, False)
        self._event(hold, document_id, "lifted")
        return True

    def _apply_lifting(self, hold: Hold, progress: Callable[[int], None] | None) -> None:
        batch: list[str] = []
        done = in_order(lambda d: (d, self._lift_one(hold, d)), hold.document_ids, self._workers)
        for n, (document_id, exists) in enumerate(done, 1):
            if exists:
                batch.append(document_id)
            if len(batch) >= 200:
                self._update_index(batch)
                batch = []
            if progress is not None:
                progress(n)
        self._update_index(batch)
        self._storage.delete(layout.open_key(hold.hold_id))

    # -- reading and repair -------------------------------------------------------------------

    def get(self, hold_id: str) -> Hold:
        """Raises: HoldNotFoundError, InvalidKeyError, StorageUnavailableError."""
        try:
            placed = read_json(self._storage, layout.hold_key(hold_id, "placed.json"))
        except ObjectNotFoundError as exc:
            raise HoldNotFoundError(hold_id) from exc
        lifted: dict[str, Any] = {}
        with contextlib.suppress(ObjectNotFoundError):
            lifted = read_json(self._storage, layout.hold_key(hold_id, "lifted.json"))
        return Hold(
            hold_id=str(placed["hold_id"]),
            reason=str(placed["reason"]),
            mandate=str(placed["mandate"]),
            placed_by=str(placed["placed_by"]),
            placed_at=datetime.fromisoformat(placed["placed_at"]),
            document_ids=tuple(placed["document_ids"]),
            query=placed.get("query"),
            lifted_by=lifted.get("lifted_by"),
            lifted_at=(
                datetime.fromisoformat(lifted["lifted_at"]) if lifted.get("lifted_at") else None
            ),
            lift_reason=lifted.get("reason"),
        )

    def hold_ids(self) -> Iterator[str]:
        """Ids of every hold ever placed (active and lifted), in key order."""
        for key in self._storage.keys(layout.HOLDS_PREFIX):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == "placed.json":
                yield parts[1]

    def all(self, *, active_only: bool = False) -> list[Hold]:
        """Every hold, oldest placement first."""
        holds = [self.get(h) for h in self.hold_ids()]
        if active_only:
            holds = [h for h in holds if h.active]
        return sorted(holds, key=lambda h: (h.placed_at, h.hold_id))

    def holds_of(self, document_id: str) -> tuple[str, ...]:
        """Ids of the holds in force on the document (from storage)."""
        return holds_in_force(self._storage, document_id)

    def resume(self) -> list[str]:
        """Finish every interrupted placement and lifting; return their hold ids. An open
        marker without a hold record (a placement that died before recording) is removed:
        that hold was never placed.

        Raises:
            StorageUnavailableError, IndexUnavailableError.
        """
        finished = []
        for key in list(self._storage.keys(layout.OPEN_PREFIX)):
            hold_id = key.rsplit("/", 1)[1]
            try:
                hold = self.get(hold_id)
            except HoldNotFoundError:
                self._storage.delete(key)
                continue
            if hold.active:
                self._apply_placement(hold, None)
            else:
                self._apply_lifting(hold, None)
            finished.append(hold_id)
        return finished

    # -- helpers ------------------------------------------------------------------------------

    def _event(self, hold: Hold, document_id: str, step: str) -> None:
        if step == "placed":
            at, who = hold.placed_at, hold.placed_by
            detail = (
                f"legal hold {hold.hold_id} placed; mandate: {hold.mandate}; reason: {hold.reason}"
            )
        else:
            at, who = hold.lifted_at or self._clock(), hold.lifted_by or "kluis"
            detail = f"legal hold {hold.hold_id} lifted; reason: {hold.lift_reason}"
        event = PremisEvent(
            str(uuid.uuid5(_EVENT_NS, f"{hold.hold_id}/{document_id}/{step}")),
            POLICY_EVENT_TYPE,
            at,
            "success",
            detail,
            (who, "kluis"),
        )
        with contextlib.suppress(ObjectExistsError):  # recorded by an interrupted run
            self._events.append(document_id, event)

    def _update_index(self, document_ids: list[str]) -> None:
        if self._updater is not None and document_ids:
            self._updater.update(document_ids)

    def _ensure(self, key: str, data: bytes) -> None:
        with contextlib.suppress(ObjectExistsError):
            self._put_once(key, data)

    def _put_once(self, key: str, data: bytes) -> None:
        self._storage.put(
            key,
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            if_absent=True,
        )
