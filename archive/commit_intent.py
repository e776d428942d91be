"""Commit intents: the redo record that lets reconcile finish an interrupted commit.

:meth:`archive.store.AipStore.commit` writes a package's small files *with* their retention
(one request or fsync each, no later ``set_retention``). A crash part-way would leave locked
files that nobody may delete for years, so before the first of them it stores an intent under
``commit-intents/<aip id>``, without retention: the root METS and the bytes of every file
written after it. Whatever a crash leaves, reconcile can then write the missing files and the
root METS (:meth:`AipStore.complete`); the intent is deleted once the root METS exists. A
backend that makes a package's files and root METS appear at once (fs, a fresh directory
renamed into place) has no such crash state and does not store it (``NewBatch.redo``).

Format (version 1): ``KLUIS-COMMIT-INTENT 1\\n``, one JSON header line, then the root METS
and the files' bytes, concatenated in header order. Every piece's size and SHA-256 is in the
header and checked on decoding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from archive.errors import InvalidPackageError
from archive.layout import ROOT_METS

__all__ = ["PREFIX", "CommitIntent", "decode_intent", "encode_intent", "intent_key"]

PREFIX = "commit-intents/"
_MAGIC = b"KLUIS-COMMIT-INTENT 1\n"


def intent_key(aip_id: str) -> str:
    return f"{PREFIX}{aip_id}"


@dataclass(frozen=True)
class CommitIntent:
    aip_id: str
    written_at: datetime
    retain_until: datetime
    root_mets: bytes
    files: dict[str, bytes]
    """Path inside the package -> bytes, for the files written after the intent."""


def _piece(data: bytes, sha256: str | None) -> list[object]:
    return [len(data), sha256 or hashlib.sha256(data).hexdigest()]


def encode_intent(intent: CommitIntent, sha256: Mapping[str, str] | None = None) -> bytes:
    """The intent's bytes. ``sha256``: path (``METS.xml`` for the root METS) -> the SHA-256
    of those bytes, where the caller has checked it already (saves hashing them again); any
    piece not in it is hashed here."""
    known = sha256 or {}
    header = {
        "aip_id": intent.aip_id,
        "written_at": intent.written_at.isoformat(),
        "retain_until": intent.retain_until.isoformat(),
        "root_mets": _piece(intent.root_mets, known.get(ROOT_METS)),
        "files": [[path, *_piece(data, known.get(path))] for path, data in intent.files.items()],
    }
    line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return b"".join([_MAGIC, line, b"\n", intent.root_mets, *intent.files.values()])


def decode_intent(aip_id: str, raw: bytes) -> CommitIntent:
    """Raises: InvalidPackageError (not an intent of ``aip_id``, or torn/altered bytes)."""
    if not raw.startswith(_MAGIC):
        raise InvalidPackageError(aip_id, "the commit intent has an unknown format")
    line, sep, payload = raw[len(_MAGIC) :].partition(b"\n")
    try:
        header = json.loads(line)
        if not sep or header["aip_id"] != aip_id:
            raise ValueError("the intent names another package")
        pieces = [("METS.xml", *header["root_mets"])]
        pieces += [tuple(f) for f in header["files"]]
        written_at = datetime.fromisoformat(header["written_at"])
        retain_until = datetime.fromisoformat(header["retain_until"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidPackageError(aip_id, f"the commit intent is unreadable: {exc}") from exc
    parts: list[tuple[str, bytes]] = []
    offset = 0
    for path, size, sha256 in pieces:
        data = payload[offset : offset + int(size)]
        offset += int(size)
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
            raise InvalidPackageError(aip_id, f"the commit intent's copy of {path} is damaged")
        parts.append((str(path), data))
    if offset != len(payload):
        raise InvalidPackageError(aip_id, "the commit intent has trailing bytes")
    return CommitIntent(aip_id, written_at, retain_until, parts[0][1], dict(parts[1:]))
