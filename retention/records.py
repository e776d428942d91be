"""Retention records: each document's retention as storage records it, and its changes.

At ingest a package records the rule that applied (document type, selection-list version,
trigger, period, action) and the computed end in its descriptive metadata, and its objects
are locked until that end (the *baseline*). A package never changes, so every later change
is an append-only **retention record** next to it (``retention/<document id>/<seq>...``, see
:mod:`retention.layout`):

* :meth:`RetentionRecords.recompute` applies a new selection-list edition to every document;
* :meth:`RetentionRecords.record_trigger` records the event date an ``event:<name>`` rule
  counts from, delivered by the agency after ingest.

Each change is, in this order: the record (conditional create: the decision is durable
before anything acts on it), the object lock of every object of every version extended
when the new end is later (COMPLIANCE locks are never shortened: a shorter new end keeps
the longer lock, and :class:`RetentionState` reports both), a PREMIS event in the event log
(its id derived from the record, so a re-run never adds a second one), then the index.
A re-run after a crash finds the record and finishes the remaining steps, so both
operations are resumable and idempotent.

:meth:`RetentionRecords.state` implements :class:`retention.state.RetentionFacts`: it reads
storage only (never the index) and is what disposal re-checks before deleting.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, TypeVar, cast

from archive import layout as aip_layout
from archive.destruction import root_mets_sha256
from archive.errors import (
    InvalidKeyError,
    InvalidPackageError,
    ObjectExistsError,
    ObjectNotFoundError,
    PackageNotFoundError,
)
from archive.events import EventLog
from archive.model import DocumentMetadata, PremisEvent
from archive.storage.base import Storage
from archive.store import AipStore
from retention import layout
from retention.errors import (
    InvalidSelectionListError,
    InvalidTriggerError,
    RetentionRecordConflictError,
    SelectionListVersionReusedError,
    TriggerAlreadyRecordedError,
)
from retention.projection import IndexUpdater, holds_in_force, latest_record_key, read_json
from retention.selection_list import (
    ISSUED_ON,
    Action,
    RetentionRule,
    SelectionList,
    parse_selection_list,
)
from retention.state import RetentionState

__all__ = [
    "POLICY_EVENT_TYPE",
    "RecomputeReport",
    "RetentionChange",
    "RetentionRecord",
    "RetentionRecords",
    "lock_datetime",
]

POLICY_EVENT_TYPE = "policy assignment"
"""PREMIS event type (Library of Congress vocabulary) of every retention change and hold."""
UNRECORDED_VERSION = "unrecorded"
"""List version of packages archived before the rule was recorded in the package."""
_EVENT_NS = uuid.UUID("6f1d2c3e-8a4b-4f57-9c1e-2b7d5e0a9c11")

Cause = Literal["ingest", "recompute", "trigger"]
_T = TypeVar("_T")


def lock_datetime(day: date) -> datetime:
    """The object-lock instant of a retention end: midnight UTC starting that day."""
    return datetime.combine(day, time.min, UTC)


def _lock_date(instant: datetime | None) -> date | None:
    """The first day on which a lock ending at ``instant`` no longer holds."""
    if instant is None:
        return None
    instant = instant.astimezone(UTC)
    day = instant.date()
    return day if instant.time() == time.min else day + timedelta(days=1)


@dataclass(frozen=True)
class RetentionRecord:
    """One document's retention under one rule: the baseline (seq 0, from the package's
    metadata) or an appended record."""

    document_id: str
    seq: int
    cause: Cause
    recorded_at: datetime | None
    list_version: str
    document_type: str
    trigger: str
    trigger_date: date | None
    period: str | None
    action: Action
    retention_until: date | None
    previous_until: date | None = None
    """The end before this record (recompute and trigger records)."""
    previous_action: Action | None = None
    by: str = "kluis"

    def to_json(self) -> bytes:
        body = {
            "document_id": self.document_id,
            "seq": self.seq,
            "cause": self.cause,
            "recorded_at": None if self.recorded_at is None else self.recorded_at.isoformat(),
            "list_version": self.list_version,
            "document_type": self.document_type,
            "trigger": self.trigger,
            "trigger_date": _iso(self.trigger_date),
            "period": self.period,
            "action": self.action,
            "retention_until": _iso(self.retention_until),
            "previous_until": _iso(self.previous_until),
            "previous_action": self.previous_action,
            "by": self.by,
        }
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RetentionRecord:
        recorded = raw.get("recorded_at")
        return cls(
            document_id=str(raw["document_id"]),
            seq=int(raw["seq"]),
            cause=cast(Cause, raw["cause"]),
            recorded_at=None if recorded is None else datetime.fromisoformat(recorded),
            list_version=str(raw["list_version"]),
            document_type=str(raw["document_type"]),
            trigger=str(raw["trigger"]),
            trigger_date=_date(raw.get("trigger_date")),
            period=raw.get("period"),
            action=cast(Action, raw["action"]),
            retention_until=_date(raw.get("retention_until")),
            previous_until=_date(raw.get("previous_until")),
            previous_action=cast("Action | None", raw.get("previous_action")),
            by=str(raw.get("by", "kluis")),
        )


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _date(value: object) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


@dataclass(frozen=True)
class RetentionChange:
    document_id: str
    old_until: date | None
    new_until: date | None
    old_action: str
    new_action: str
    locked_until: date | None = None
    """The object lock in force after the change (later than ``new_until`` when shortened)."""


Outcome = Literal["extended", "shortened", "unchanged", "pending", "unknown_type"]


@dataclass
class RecomputeReport:
    """What a new selection-list edition changed. ``shortened`` documents keep their
    longer object lock (COMPLIANCE cannot be shortened)."""

    list_version: str
    extended: list[RetentionChange] = field(default_factory=list)
    shortened: list[RetentionChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    """Documents whose new rule counts from an event date not delivered yet."""
    unknown_type: list[str] = field(default_factory=list)
    """Documents whose type the new list lacks: left as they were."""
    locks_extended: int = 0
    """Objects whose retention was extended."""

    @property
    def total(self) -> int:
        return (
            len(self.extended)
            + len(self.shortened)
            + len(self.unchanged)
            + len(self.pending)
            + len(self.unknown_type)
        )

    def counts(self) -> dict[str, int]:
        return {
            "extended": len(self.extended),
            "shortened": len(self.shortened),
            "unchanged": len(self.unchanged),
            "pending": len(self.pending),
            "unknown_type": len(self.unknown_type),
            "locks_extended": self.locks_extended,
        }

    def to_dict(self) -> dict[str, Any]:
        def change(c: RetentionChange) -> dict[str, Any]:
            return {
                "id": c.document_id,
                "old_until": _iso(c.old_until),
                "new_until": _iso(c.new_until),
                "old_action": c.old_action,
                "new_action": c.new_action,
                "locked_until": _iso(c.locked_until),
            }

        return {
            "list_version": self.list_version,
            "counts": self.counts(),
            "extended": [change(c) for c in self.extended],
            "shortened": [change(c) for c in self.shortened],
            "unchanged": list(self.unchanged),
            "pending": list(self.pending),
            "unknown_type": list(self.unknown_type),
        }


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionRecords:
    """Reads and changes documents' retention in storage (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        store: AipStore,
        events: EventLog,
        selection: SelectionList,
        *,
        clock: Callable[[], datetime] = _utcnow,
        index: IndexUpdater | None = None,
    ) -> None:
        self._storage = storage
        self._store = store
        self._events = events
        self._selection = selection
        self._clock = clock
        self._index = index

    @property
    def selection(self) -> SelectionList:
        return self._selection

    # -- reading ------------------------------------------------------------------------------

    def state(self, document_id: str) -> RetentionState:
        """The document's retention as storage records it now (never the index).

        Raises:
            PackageNotFoundError: no committed document has this id (e.g. destroyed).
            InvalidPackageError, IntegrityError: its stored metadata is unreadable.
            StorageUnavailableError.
        """
        versions = self._store.versions(document_id)
        key = latest_record_key(self._storage, document_id)
        try:
            if key is not None:
                current = self._read_record(document_id, key)
                first = root_mets_sha256(self._storage, document_id)
            else:  # the baseline: the root METS read for the metadata also gives its hash
                # (the metadata from the index file the root METS declares: no XML parsed)
                meta, first = self._store.metadata_and_root_sha256(document_id)
                current = self._baseline(document_id, meta)
            hashes = (first, *(root_mets_sha256(self._storage, a) for a in versions[1:]))
        except ObjectNotFoundError as exc:  # being destroyed while we read it
            raise PackageNotFoundError(document_id) from exc
        locks = [
            self._storage.stat(aip_layout.aip_key(a, aip_layout.ROOT_METS)).retain_until
            for a in versions
        ]
        dated = [d for d in locks if d is not None]
        return RetentionState(
            document_id=document_id,
            document_type=current.document_type,
            action=current.action,
            list_version=current.list_version,
            trigger_date=current.trigger_date,
            retention_until=current.retention_until,
            locked_until=_lock_date(max(dated)) if dated else None,
            holds=holds_in_force(self._storage, document_id),
            versions=tuple(versions),
            root_mets_sha256=hashes,
        )

    def current(self, document_id: str, meta: DocumentMetadata | None = None) -> RetentionRecord:
        """The document's newest retention record, or its baseline from the package.

        Raises:
            PackageNotFoundError, InvalidPackageError, IntegrityError, StorageUnavailableError.
        """
        key = latest_record_key(self._storage, document_id)
        if key is not None:
            return self._read_record(document_id, key)
        return self._baseline(document_id, meta or self._store.metadata(document_id))

    def history(self, document_id: str) -> list[RetentionRecord]:
        """The baseline and every appended record, oldest first.

        Raises:
            As :meth:`current`.
        """
        found = [self._baseline(document_id, self._store.metadata(document_id))]
        for key in self._storage.keys(layout.records_prefix(document_id)):
            if layout.parse_record_key(key) is not None:
                found.append(self._read_record(document_id, key))
        return found

    def _read_record(self, document_id: str, key: str) -> RetentionRecord:
        """Raises: InvalidPackageError (an unreadable record), StorageUnavailableError."""
        try:
            return RetentionRecord.from_json(read_json(self._storage, key))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidPackageError(document_id, f"retention record {key}: {exc}") from exc

    def _baseline(self, document_id: str, meta: DocumentMetadata) -> RetentionRecord:
        if meta.retention_list_version is not None:
            trigger = meta.retention_trigger or ISSUED_ON
            return RetentionRecord(
                document_id=document_id,
                seq=0,
                cause="ingest",
                recorded_at=None,
                list_version=meta.retention_list_version,
                document_type=meta.document_type,
                trigger=trigger,
                trigger_date=meta.issued_on if trigger == ISSUED_ON else None,
                period=meta.retention_period,
                action=cast(Action, meta.retention_action or "keep"),
                retention_until=meta.retention_until,
            )
        # Archived before packages recorded their rule: the end it recorded stands; the
        # action is the current list's (unknown type: kept, the safe side).
        rule = self._selection.rules.get(meta.document_type)
        action: Action = "keep" if meta.retention_until is None or rule is None else rule.action
        return RetentionRecord(
            document_id=document_id,
            seq=0,
            cause="ingest",
            recorded_at=None,
            list_version=UNRECORDED_VERSION,
            document_type=meta.document_type,
            trigger=ISSUED_ON,
            trigger_date=meta.issued_on,
            period=None,
            action=action,
            retention_until=meta.retention_until,
        )

    # -- writing ------------------------------------------------------------------------------

    def register_list(self, selection: SelectionList) -> None:
        """Keep the list edition in storage (its history); refuse a version string already
        used for other rules.

        Raises:
            SelectionListVersionReusedError, StorageUnavailableError.
        """
        data = selection.canonical()
        key = layout.list_key(selection.version)
        try:
            self._put_once(key, data)
        except ObjectExistsError:
            with self._storage.open(key) as stream:
                if stream.read() != data:
                    raise SelectionListVersionReusedError(selection.version) from None

    def _edition(self, version: str) -> SelectionList:
        """The list edition a document's rule came from (kept by :meth:`register_list`), so
        a process still running an older list never applies it over a newer recompute; the
        running list when that edition was not kept."""
        if version == self._selection.version:
            return self._selection
        try:
            raw = read_json(self._storage, layout.list_key(version))
        except (ObjectNotFoundError, InvalidKeyError, ValueError):
            return self._selection
        try:
            return parse_selection_list(raw, source=layout.list_key(version))
        except InvalidSelectionListError:
            return self._selection

    def recompute(
        self,
        new_list: SelectionList,
        *,
        after: str | None = None,
        progress: Callable[[int], None] | None = None,
        by: str = "kluis",
        workers: int = 4,
    ) -> RecomputeReport:
        """Apply ``new_list`` to every document (ascending ids; ``after``: resume after
        that id) and report what changed. Idempotent: a document already recomputed under
        this version is reported as before and only its missing steps are done.

        Documents are handled on ``workers`` threads (the work is waiting on storage: a
        lock change per object), results are consumed in id order.

        Raises:
            SelectionListVersionReusedError: ``new_list`` reuses a version string (of the
                running list or of an edition applied before) for other rules.
            StorageUnavailableError, IndexUnavailableError; archive errors of an
            unreadable package (a recompute that silently skipped one would look complete).
        """
        if (
            new_list.version == self._selection.version
            and new_list.canonical() != self._selection.canonical()
        ):
            raise SelectionListVersionReusedError(new_list.version)
        self.register_list(self._selection)
        self.register_list(new_list)
        report = RecomputeReport(new_list.version)
        pending_index: list[str] = []
        results = in_order(
            lambda d: (d, *self._recompute_one(d, new_list, by)),
            self._document_ids(after),
            workers,
        )
        for done, (document_id, outcome, change, touched, locks) in enumerate(results, 1):
            report.locks_extended += locks
            if outcome in ("extended", "shortened"):
                assert change is not None
                getattr(report, outcome).append(change)
            else:
                getattr(report, outcome).append(document_id)
            if touched:
                pending_index.append(document_id)
            if len(pending_index) >= 200:
                self._update_index(pending_index)
                pending_index = []
            if progress is not None:
                progress(done)
        self._update_index(pending_index)
        self._selection = new_list
        return report

    def _document_ids(self, after: str | None) -> Iterator[str]:
        for document_id in self._store.document_ids():
            if after is None or document_id > after:
                yield document_id

    def _recompute_one(
        self, document_id: str, new_list: SelectionList, by: str
    ) -> tuple[Outcome, RetentionChange | None, bool, int]:
        meta = self._store.metadata(document_id)
        current = self.current(document_id, meta)
        rule = new_list.rules.get(current.document_type)
        if rule is None:
            return "unknown_type", None, False, 0
        if current.list_version == new_list.version and current.seq == 0:
            return "unchanged", None, False, 0  # ingested under this edition already
        if current.list_version == new_list.version:
            record = current  # done before (a re-run): report it, finish the steps
            touched = False
        else:
            record = self._next_record(
                current, rule, new_list.version, meta.issued_on, by, cause="recompute"
            )
            try:
                self._append(record)
            except RetentionRecordConflictError:
                # Another recompute of this edition got there first: finish with its record.
                winner = self.current(document_id, meta)
                if winner.list_version != new_list.version:
                    raise
                record = winner
            touched = record.retention_until != current.retention_until
        locks = self._extend_lock(document_id, rule.lock_floor(meta.issued_on, record.trigger_date))
        self._event(record, f"retention recomputed under selection list {new_list.version}")
        outcome = _classify(record)
        change = None
        if outcome in ("extended", "shortened"):
            locked = self._store.document_locked_until(document_id)
            change = RetentionChange(
                document_id,
                record.previous_until,
                record.retention_until,
                record.previous_action or record.action,
                record.action,
                _lock_date(locked),
            )
        return outcome, change, touched, locks

    def record_trigger(
        self, document_id: str, event: str, on: date, *, by: str = "kluis"
    ) -> RetentionState:
        """Record the date of the event the document's rule counts from; its retention end
        becomes the rule's period after ``on`` and its lock is extended to it. Delivering
        the same date again changes nothing.

        Raises:
            PackageNotFoundError: no such document.
            InvalidTriggerError: the rule counts from another event or from the issue date,
                or ``on`` lies before the issue date or in the future.
            TriggerAlreadyRecordedError: another date was recorded before.
            RetentionRecordConflictError, StorageUnavailableError, IndexUnavailableError.
        """
        meta = self._store.metadata(document_id)
        current = self.current(document_id, meta)
        edition = self._edition(current.list_version)
        rule = edition.rules.get(current.document_type)
        if rule is None:
            raise InvalidTriggerError(
                document_id, f"the selection list has no rule for type {current.document_type!r}"
            )
        if rule.event is None:
            raise InvalidTriggerError(
                document_id, "its retention counts from the issue date, not from an event"
            )
        if event != rule.event:
            raise InvalidTriggerError(
                document_id, f"its retention counts from event {rule.event!r}, not {event!r}"
            )
        if on < meta.issued_on:
            raise InvalidTriggerError(
                document_id, f"event date {on} lies before the issue date {meta.issued_on}"
            )
        if on > self._clock().date():
            raise InvalidTriggerError(document_id, f"event date {on} lies in the future")
        if current.trigger == rule.trigger and current.trigger_date is not None:
            if current.trigger_date != on:
                raise TriggerAlreadyRecordedError(
                    document_id, event, current.trigger_date.isoformat()
                )
            record = current
        else:
            record = self._next_record(
                current,
                rule,
                edition.version,
                meta.issued_on,
                by,
                cause="trigger",
                trigger_date=on,
            )
            self._append(record)
        self._extend_lock(document_id, rule.lock_floor(meta.issued_on, on))
        self._event(record, f"retention trigger {event!r} recorded: {on.isoformat()}")
        self._update_index([document_id])
        return self.state(document_id)

    def _next_record(
        self,
        current: RetentionRecord,
        rule: RetentionRule,
        version: str,
        issued_on: date,
        by: str,
        *,
        cause: Cause,
        trigger_date: date | None = None,
    ) -> RetentionRecord:
        if trigger_date is None:
            if rule.event is None:
                trigger_date = issued_on
            elif current.trigger == rule.trigger:
                trigger_date = current.trigger_date  # the event date delivered earlier
        return RetentionRecord(
            document_id=current.document_id,
            seq=current.seq + 1,
            cause=cause,
            recorded_at=self._clock(),
            list_version=version,
            document_type=current.document_type,
            trigger=rule.trigger,
            trigger_date=trigger_date,
            period=None if rule.period is None else str(rule.period),
            action=rule.action,
            retention_until=rule.retention_end(issued_on, trigger_date),
            previous_until=current.retention_until,
            previous_action=current.action,
            by=by,
        )

    def _append(self, record: RetentionRecord) -> None:
        key = layout.record_key(record.document_id, record.seq, record.retention_until)
        try:
            self._put_once(key, record.to_json())
        except ObjectExistsError as exc:
            raise RetentionRecordConflictError(record.document_id) from exc
        # Another writer may have taken this sequence number under another end (the end
        # is part of the key): the newest key must be ours.
        if latest_record_key(self._storage, record.document_id) != key:
            raise RetentionRecordConflictError(record.document_id)

    def _extend_lock(self, document_id: str, until: date | None) -> int:
        if until is None:
            return 0
        target = lock_datetime(until)
        if target <= self._clock():
            return 0  # a lock ending in the past protects nothing (S3 refuses it anyway)
        locked = self._store.document_locked_until(document_id)
        if locked is not None and locked >= target:
            return 0
        return self._store.extend_document_retention(document_id, target)

    def _event(self, record: RetentionRecord, what: str) -> None:
        end = "none" if record.retention_until is None else record.retention_until.isoformat()
        detail = (
            f"{what}; rule {record.document_type} of list {record.list_version}: "
            f"{record.period or 'no period'} from {record.trigger}, then {record.action}; "
            f"retention end {end} (was {_iso(record.previous_until) or 'none'})"
        )
        at = record.recorded_at or self._clock()
        event = PremisEvent(
            str(uuid.uuid5(_EVENT_NS, f"{record.document_id}/retention/{record.seq}")),
            POLICY_EVENT_TYPE,
            at,
            "success",
            detail,
            (record.by, "kluis") if record.by != "kluis" else ("kluis",),
        )
        with contextlib.suppress(ObjectExistsError):  # recorded by an interrupted run
            self._events.append(record.document_id, event)

    def _update_index(self, document_ids: list[str]) -> None:
        if self._index is not None:
            self._index.update(document_ids)

    def _put_once(self, key: str, data: bytes) -> None:
        self._storage.put(
            key,
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            if_absent=True,
        )


def in_order(fn: Callable[[str], _T], ids: Iterable[str], workers: int) -> Iterator[_T]:
    """``fn`` of every id, on ``workers`` threads, yielded in the order of ``ids`` (a bounded
    window of work ahead; the first error is raised when its turn comes)."""
    if workers <= 1:
        yield from map(fn, ids)
        return
    window: deque[Future[_T]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="kluis-retention") as pool:
        try:
            for item in ids:
                window.append(pool.submit(fn, item))
                if len(window) >= workers * 4:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:
                future.cancel()


def _classify(record: RetentionRecord) -> Outcome:
    if record.action == "keep":
        return "unchanged" if record.previous_action == "keep" else "extended"
    if record.retention_until is None:
        return "pending"
    if record.previous_action == "keep":
        return "shortened"  # kept permanently before, now an end
    if record.previous_until is None:  # was pending: now known
        return "extended"
    if record.retention_until > record.previous_until:
        return "extended"
    if record.retention_until < record.previous_until:
        return "shortened"
    return "unchanged"
