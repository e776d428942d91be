"""Disposal proposals in storage: immutable records, four-eyes decisions, their event log.

::

    disposal/proposals/<id>/items-<n>.json     item chunks (n = 000000, ...), written first
    disposal/proposals/<id>/proposal.json      the header, written LAST (commit marker)
    disposal/proposals/<id>/review.json        first pair of eyes (conditional create)
    disposal/proposals/<id>/decision.json      approval OR rejection (conditional create)
    disposal/proposals/<id>/execution.json     execution started: executor, batch size
    disposal/proposals/<id>/journal/<n>.intent.json / <n>.done.json   per execution batch
    disposal/proposals/<id>/executed.json      execution finished: the certificate id
    disposal/proposals/<id>/events/<time>-<event id>.xml   PREMIS event of every step

Every record is a conditional create and never rewritten, so two racing requests cannot both
take the same step: approval and rejection share ``decision.json``, so exactly one of them
wins. A proposal without its header is invisible (an interrupted sweep); large proposals are
chunked so a million items never make one giant object.

Invariants: items hold ids, type codes, actions, dates and list versions only: no personal
data. A document is in at most one *open* proposal when proposals come from :func:`sweep`
(it skips ids of open proposals); execution tolerates duplicates anyway (tombstones).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from archive.errors import InvalidKeyError, ObjectExistsError, ObjectNotFoundError
from archive.model import PremisEvent
from archive.premis import read_event_record, write_event_record
from archive.storage.base import Storage, check_key
from retention.disposal_errors import ProposalNotFoundError

__all__ = [
    "PROPOSALS_PREFIX",
    "Decision",
    "DisposalAction",
    "Proposal",
    "ProposalItem",
    "ProposalState",
    "ProposalStatus",
    "ProposalStore",
]

PROPOSALS_PREFIX = "disposal/proposals/"
CHUNK_ITEMS = 10_000
"""Items per chunk object (about 1 MB of JSON)."""

DisposalAction = Literal["destroy", "transfer"]
ProposalState = Literal["open", "reviewed", "approved", "rejected", "executing", "executed"]


@dataclass(frozen=True)
class ProposalItem:
    """One document proposed for disposal, as storage recorded it when proposed.

    An *unconfirmed* item (from an index-only sweep, see :func:`retention.sweep.sweep`) has
    only its id: type, action, end and list version are read from storage at execution and
    recorded in the journal and the certificate.
    """

    document_id: str
    document_type: str | None = None
    action: DisposalAction | None = None
    retention_until: date | None = None
    list_version: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.action is not None

    def row(self) -> list[str] | str:
        if not self.confirmed:
            return self.document_id  # a bare id: a million of them stay small
        return [
            self.document_id,
            self.document_type or "",
            self.action or "",
            self.retention_until.isoformat() if self.retention_until else "",
            self.list_version or "",
        ]

    @classmethod
    def from_row(cls, row: list[str] | str) -> ProposalItem:
        if isinstance(row, str):
            return cls(row)
        doc, doc_type, action, until, version = row
        actions: dict[str, DisposalAction] = {"destroy": "destroy", "transfer": "transfer"}
        if action not in actions:
            raise ValueError(f"unknown disposal action {action!r}")
        return cls(doc, doc_type, actions[action], date.fromisoformat(until), version)

    @property
    def count_key(self) -> str:
        return f"{self.document_type}:{self.action}" if self.confirmed else "unconfirmed"


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    created_at: datetime
    proposed_by: str
    due_before: date
    """Items were due before this day (the sweep's ``today``)."""
    item_count: int
    chunk_count: int
    counts: Mapping[str, int] = field(default_factory=dict)
    """Items per ``<type>:<action>``, and ``unconfirmed`` for index-only items."""

    def to_json(self) -> dict[str, Any]:
        return {
            "proposal_id": self.proposal_id,
            "created_at": self.created_at.isoformat(),
            "proposed_by": self.proposed_by,
            "due_before": self.due_before.isoformat(),
            "item_count": self.item_count,
            "chunk_count": self.chunk_count,
            "counts": dict(sorted(self.counts.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Proposal:
        return cls(
            proposal_id=str(data["proposal_id"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            proposed_by=str(data["proposed_by"]),
            due_before=date.fromisoformat(data["due_before"]),
            item_count=int(data["item_count"]),
            chunk_count=int(data["chunk_count"]),
            counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
        )


@dataclass(frozen=True)
class Decision:
    """One archivist's step on a proposal (review, approval or rejection)."""

    kind: Literal["review", "approval", "rejection"]
    archivist: str
    at: datetime
    note: str = ""
    request_id: str = ""
    """Unique per request: two racing requests never write identical bytes (a store may
    accept an identical conditional create as an idempotent retry)."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "archivist": self.archivist, "at": self.at.isoformat(),
                "note": self.note, "request_id": self.request_id}  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        kind = data["kind"]
        if kind not in ("review", "approval", "rejection"):
            raise ValueError(f"unknown decision {kind!r}")
        return cls(kind, str(data["archivist"]), datetime.fromisoformat(data["at"]),
                   str(data.get("note", "")), str(data.get("request_id", "")))  # fmt: skip


@dataclass(frozen=True)
class ProposalStatus:
    proposal: Proposal
    review: Decision | None = None
    decision: Decision | None = None
    execution: Mapping[str, Any] | None = None
    executed: Mapping[str, Any] | None = None

    @property
    def state(self) -> ProposalState:
        if self.executed is not None:
            return "executed"
        if self.execution is not None:
            return "executing"
        if self.decision is not None:
            return "approved" if self.decision.kind == "approval" else "rejected"
        return "reviewed" if self.review is not None else "open"

    @property
    def is_open(self) -> bool:
        """Its items may still be disposed of by it (not rejected, not finished)."""
        return self.state not in ("rejected", "executed")

    @property
    def certificate_id(self) -> str | None:
        return None if self.executed is None else str(self.executed["certificate_id"])


def _dumps(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class ProposalStore:
    """Reads and writes proposals and their records in a :class:`Storage`."""

    def __init__(self, storage: Storage, *, chunk_items: int = CHUNK_ITEMS) -> None:
        self.storage = storage
        self._chunk_items = chunk_items

    # -- keys ---------------------------------------------------------------------------------

    @staticmethod
    def key(proposal_id: str, name: str) -> str:
        """Raises: InvalidKeyError (the id is not a single safe segment)."""
        if not proposal_id or "/" in proposal_id:
            raise InvalidKeyError(proposal_id, "a proposal id is a single key segment")
        return check_key(f"{PROPOSALS_PREFIX}{proposal_id}/{name}")

    # -- raw records --------------------------------------------------------------------------

    def create_record(self, proposal_id: str, name: str, value: object) -> None:
        """Conditional create of one JSON record.

        Raises:
            ObjectExistsError: it exists already (another request took this step first).
            InvalidKeyError, StorageUnavailableError.
        """
        raw = _dumps(value)
        self.storage.put(
            self.key(proposal_id, name),
            io.BytesIO(raw),
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            if_absent=True,
        )

    def read_record(self, proposal_id: str, name: str) -> Any | None:
        """The JSON value of a record, or None when absent.

        Raises:
            InvalidKeyError, StorageUnavailableError, ValueError (not JSON).
        """
        try:
            with self.storage.open(self.key(proposal_id, name)) as stream:
                return json.loads(stream.read())
        except ObjectNotFoundError:
            return None

    def ensure_record(self, proposal_id: str, name: str, value: object) -> Any:
        """Create the record unless it exists; return the stored value (ours or the earlier
        writer's). For idempotent steps of a resumable run."""
        try:
            self.create_record(proposal_id, name, value)
        except ObjectExistsError:
            return self.read_record(proposal_id, name)
        return json.loads(_dumps(value))

    # -- proposals ----------------------------------------------------------------------------

    def create(
        self,
        proposal_id: str,
        *,
        created_at: datetime,
        proposed_by: str,
        due_before: date,
        items: Iterable[ProposalItem],
        on_chunk: Callable[[int], None] | None = None,
    ) -> Proposal:
        """Store the items in chunks, then the header (the commit marker).

        Raises:
            ObjectExistsError: a proposal with this id exists.
            InvalidKeyError, StorageUnavailableError.
        """
        if self.storage.exists(self.key(proposal_id, "proposal.json")):
            raise ObjectExistsError(self.key(proposal_id, "proposal.json"))
        counts: Counter[str] = Counter()
        chunk: list[list[str] | str] = []
        chunks = 0
        total = 0

        def flush() -> None:
            nonlocal chunks, chunk
            self.create_record(proposal_id, f"items-{chunks:06d}.json", {"items": chunk})
            if on_chunk is not None:
                on_chunk(len(chunk))
            chunks += 1
            chunk = []

        for item in items:
            chunk.append(item.row())
            counts[item.count_key] += 1
            total += 1
            if len(chunk) >= self._chunk_items:
                flush()
        if chunk:
            flush()
        proposal = Proposal(proposal_id, created_at, proposed_by, due_before, total, chunks, counts)
        self.create_record(proposal_id, "proposal.json", proposal.to_json())
        return proposal

    def get(self, proposal_id: str) -> Proposal:
        """Raises: ProposalNotFoundError, StorageUnavailableError."""
        try:
            data = self.read_record(proposal_id, "proposal.json")
        except InvalidKeyError as exc:
            raise ProposalNotFoundError(proposal_id) from exc
        if data is None:
            raise ProposalNotFoundError(proposal_id)
        return Proposal.from_json(data)

    def items(self, proposal_id: str) -> Iterator[ProposalItem]:
        """Every item, in the order proposed (chunk by chunk; memory ~ one chunk).

        Raises:
            ProposalNotFoundError, StorageUnavailableError.
        """
        proposal = self.get(proposal_id)
        for n in range(proposal.chunk_count):
            data = self.read_record(proposal_id, f"items-{n:06d}.json")
            if data is None:
                raise ProposalNotFoundError(f"{proposal_id} (chunk {n} is missing)")
            for row in data["items"]:
                yield ProposalItem.from_row(row)

    def status(self, proposal_id: str) -> ProposalStatus:
        """Raises: ProposalNotFoundError, StorageUnavailableError."""
        proposal = self.get(proposal_id)
        review = self.read_record(proposal_id, "review.json")
        decision = self.read_record(proposal_id, "decision.json")
        return ProposalStatus(
            proposal,
            review=Decision.from_json(review) if review else None,
            decision=Decision.from_json(decision) if decision else None,
            execution=self.read_record(proposal_id, "execution.json"),
            executed=self.read_record(proposal_id, "executed.json"),
        )

    def ids(self) -> Iterator[str]:
        """Ids of every committed proposal, in id order. Raises: StorageUnavailableError."""
        for key in self.storage.keys(PROPOSALS_PREFIX):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == "proposal.json":
                yield parts[2]

    def statuses(self) -> Iterator[ProposalStatus]:
        """Raises: StorageUnavailableError."""
        for proposal_id in self.ids():
            yield self.status(proposal_id)

    def open_item_ids(self) -> set[str]:
        """Document ids in proposals that are neither rejected nor executed.

        Raises:
            StorageUnavailableError.
        """
        found: set[str] = set()
        for status in self.statuses():
            if status.is_open:
                found.update(i.document_id for i in self.items(status.proposal.proposal_id))
        return found

    # -- the proposal's PREMIS event log ------------------------------------------------------

    def append_event(self, proposal_id: str, event: PremisEvent) -> str:
        """Store one PREMIS event record about the proposal; return its key.

        Raises:
            ObjectExistsError, InvalidKeyError, StorageUnavailableError.
        """
        data = write_event_record(
            aip_id=proposal_id, event=event, object_path=f"urn:kluis:disposal:{proposal_id}"
        )
        stamp = event.at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = self.key(proposal_id, f"events/{stamp}-{event.identifier}.xml")
        self.storage.put(
            key,
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            if_absent=True,
        )
        return key

    def events(self, proposal_id: str) -> tuple[PremisEvent, ...]:
        """Every event of the proposal, oldest first.

        Raises:
            InvalidPackageError, HostileXmlError, StorageUnavailableError.
        """
        found = []
        for key in self.storage.keys(self.key(proposal_id, "events") + "/"):
            with self.storage.open(key) as stream:
                found.append(read_event_record(stream.read(), aip_id=proposal_id))
        return tuple(sorted(found, key=lambda e: e.at))
