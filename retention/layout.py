"""Where retention records, legal holds and selection-list editions live in storage.

::

    retention/<document id>/<seq>.<until>.json   retention record n (n = 000001, ...);
                                                 <until> = YYYY-MM-DD or "none"
    holds/<hold id>/placed.json                  the hold as placed (append-only)
    holds/<hold id>/lifted.json                  its lifting (append-only)
    holds-open/<hold id>                         a placement or lifting still being applied
    held/<document id>/<hold id>                 marker: this hold is in force on the document
    selection-lists/<version>.json               every list edition applied (canonical JSON)

Retention records put their retention end in the key, so one listing of ``retention/``
gives every document's current end without reading a record (reindex needs exactly that).

Invariants: records and hold documents are conditional creates, never rewritten; markers
and open markers are the only objects here that are ever deleted.
"""

from __future__ import annotations

from datetime import date

from archive.errors import InvalidKeyError
from archive.storage.base import check_key

__all__ = [
    "HELD_PREFIX",
    "HOLDS_PREFIX",
    "LISTS_PREFIX",
    "OPEN_PREFIX",
    "RECORDS_PREFIX",
    "held_key",
    "held_prefix",
    "hold_key",
    "list_key",
    "open_key",
    "parse_record_key",
    "record_key",
    "records_prefix",
]

RECORDS_PREFIX = "retention/"
HOLDS_PREFIX = "holds/"
OPEN_PREFIX = "holds-open/"
HELD_PREFIX = "held/"
LISTS_PREFIX = "selection-lists/"


def _segment(value: str) -> str:
    if not value or "/" in value:
        raise InvalidKeyError(value, "an id is a single key segment")
    check_key(value)
    return value


def records_prefix(document_id: str) -> str:
    return f"{RECORDS_PREFIX}{_segment(document_id)}/"


def record_key(document_id: str, seq: int, until: date | None) -> str:
    end = "none" if until is None else until.isoformat()
    return check_key(f"{records_prefix(document_id)}{seq:06d}.{end}.json")


def parse_record_key(key: str) -> tuple[str, int, date | None] | None:
    """``(document id, seq, until)`` of a record key, or None for any other key."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != RECORDS_PREFIX:
        return None
    pieces = parts[2].split(".")
    if len(pieces) != 3 or pieces[2] != "json" or not pieces[0].isdigit():
        return None
    try:
        until = None if pieces[1] == "none" else date.fromisoformat(pieces[1])
    except ValueError:
        return None
    return parts[1], int(pieces[0]), until


def hold_key(hold_id: str, name: str) -> str:
    return check_key(f"{HOLDS_PREFIX}{_segment(hold_id)}/{name}")


def open_key(hold_id: str) -> str:
    return check_key(f"{OPEN_PREFIX}{_segment(hold_id)}")


def held_prefix(document_id: str) -> str:
    return f"{HELD_PREFIX}{_segment(document_id)}/"


def held_key(document_id: str, hold_id: str) -> str:
    return check_key(f"{held_prefix(document_id)}{_segment(hold_id)}")


def list_key(version: str) -> str:
    return check_key(f"{LISTS_PREFIX}{_segment(version)}.json")
