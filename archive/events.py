"""The append-only event log: PREMIS events recorded after a package was committed.

A committed package never changes, so later events (fixity checks, holds, renewals) are
stored as separate one-event PREMIS records under ``events/<aip_id>/<time>-<event id>.xml``,
each a conditional create (an existing record is never overwritten) with the package's
retention, so the evidence lives as long as the package.

Invariants: records are only ever added; ``events`` returns them in time order; a record
that does not parse as an event of its package is an :class:`InvalidPackageError`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from archive import layout
from archive.errors import InvalidKeyError
from archive.fixity import FixityReport
from archive.model import PremisEvent
from archive.premis import read_event_record, write_event_record
from archive.storage.base import Storage, check_key
from archive.store import AipStore

__all__ = ["EVENTS_PREFIX", "EventLog", "FixityOutcome", "check_fixity"]

EVENTS_PREFIX = "events/"


def _prefix(aip_id: str) -> str:
    if "/" in aip_id:
        raise InvalidKeyError(aip_id, "an AIP id is a single key segment")
    return check_key(f"{EVENTS_PREFIX}{aip_id}") + "/"


class EventLog:
    """Append and read event records of packages kept in a :class:`Storage`."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def append(
        self, aip_id: str, event: PremisEvent, *, retain_until: datetime | None = None
    ) -> str:
        """Store ``event`` as a new record; return its key.

        Raises:
            ObjectExistsError: a record with this time and event id exists already.
            InvalidKeyError, StorageUnavailableError.
        """
        data = write_event_record(aip_id=aip_id, event=event, object_path=f"urn:uuid:{aip_id}")
        stamp = event.at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = check_key(f"{_prefix(aip_id)}{stamp}-{event.identifier}.xml")
        self._storage.put(
            key,
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            if_absent=True,
            retain_until=retain_until,
        )
        return key

    def events(self, aip_id: str) -> tuple[PremisEvent, ...]:
        """Every recorded event of the package, oldest first.

        Raises:
            InvalidPackageError, HostileXmlError, StorageUnavailableError.
        """
        found = []
        for key in self._storage.keys(_prefix(aip_id)):
            with self._storage.open(key) as stream:
                found.append(read_event_record(stream.read(), aip_id=aip_id))
        return tuple(sorted(found, key=lambda e: e.at))


@dataclass(frozen=True)
class FixityOutcome:
    report: FixityReport
    event: PremisEvent
    record_key: str


def check_fixity(
    store: AipStore,
    log: EventLog,
    storage: Storage,
    aip_id: str,
    *,
    new_id: Callable[[], str],
    agent_id: str = "kluis",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FixityOutcome:
    """Stream every file of the package, compare with its root METS, record a PREMIS event.

    The event (``fixity check``, outcome ``success`` or ``failure`` naming every bad file)
    is a new record in the event log with the package's retention.

    Raises:
        PackageNotFoundError, InvalidPackageError, HostileXmlError, StorageUnavailableError.
    """
    report = store.verify(aip_id)
    if report.ok:
        detail = f"SHA-256 of {len(report.files)} files matches the root METS"
    else:
        detail = "; ".join(
            f"{f.path}: {f.status} (expected {f.expected_sha256}, got {f.actual_sha256})"
            for f in report.problems
        )
    event = PremisEvent(
        new_id(),
        "fixity check",
        clock(),
        "success" if report.ok else "failure",
        detail,
        (agent_id,),
    )
    retain = storage.stat(layout.aip_key(aip_id, layout.ROOT_METS)).retain_until
    key = log.append(aip_id, event, retain_until=retain)
    return FixityOutcome(report, event, key)
