"""The durable outbox of index updates: how any process hands work to the one indexer.

tantivy allows one ``IndexWriter`` per index across all processes. So no process writes the
index directly: :meth:`Outbox.append` writes one JSON *entry* per call into
``<directory>/outbox/`` and the process that holds the writer applies entries in batches.

Invariants:
    * An entry is visible only when complete: written to a ``.tmp-*`` file, fsynced, renamed
      into place, directory fsynced. An acknowledged ``append`` survives a crash.
    * Entries are applied in name order. Names start with a zero-padded wall-clock
      nanosecond stamp that is strictly increasing within a process, so one process's
      operations keep their order; operations of different processes on the same document
      within the same instant have no defined order (as with any two concurrent writers).
    * Delivery is at-least-once: the indexer deletes an entry only after the index commit
      that contains it. Entries are idempotent (upsert = delete by ``aip_id`` + add).
    * An entry that cannot be decoded is moved to ``<directory>/outbox-rejected/`` and
      logged, so one bad entry cannot block the queue.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from search.model import IndexDocument

log = logging.getLogger(__name__)

_SUFFIX = ".json"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0
_ENTRY_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One decoded outbox entry: an ordered operation on the index."""

    name: str
    op: Literal["upsert", "remove", "clear"]
    documents: tuple[IndexDocument, ...] = ()
    aip_ids: tuple[str, ...] = ()


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def document_to_json(doc: IndexDocument) -> dict[str, Any]:
    return {
        "aip_id": doc.aip_id,
        "owner_key": doc.owner_key,
        "agency_id": doc.agency_id,
        "document_type": doc.document_type,
        "title": doc.title,
        "text": doc.text,
        "issued_on": doc.issued_on.isoformat(),
        "ingested_at": utc(doc.ingested_at).isoformat(),
        "agency_ref": doc.agency_ref,
        "retention_until": doc.retention_until.isoformat() if doc.retention_until else None,
        "on_hold": doc.on_hold,
        "disposed": doc.disposed,
    }


def document_from_json(data: dict[str, Any]) -> IndexDocument:
    """Raises: KeyError, TypeError, ValueError for anything not written by us."""
    retention = data["retention_until"]
    return IndexDocument(
        aip_id=str(data["aip_id"]),
        owner_key=str(data["owner_key"]),
        agency_id=str(data["agency_id"]),
        document_type=str(data["document_type"]),
        title=str(data["title"]),
        text=str(data["text"]),
        issued_on=date.fromisoformat(data["issued_on"]),
        ingested_at=datetime.fromisoformat(data["ingested_at"]),
        agency_ref=str(data["agency_ref"]),
        retention_until=date.fromisoformat(retention) if retention else None,
        on_hold=bool(data["on_hold"]),
        disposed=bool(data.get("disposed", False)),
    )


class Outbox:
    """A directory of ordered, durable entries. Thread-safe; safe across processes."""

    def __init__(self, directory: Path) -> None:
        """Raises: OSError when the directories cannot be created."""
        self.directory = directory
        self.rejected = directory.parent / "outbox-rejected"
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._last_ns = 0
        self._seq = 0

    def _next_name(self) -> str:
        with self._lock:
            self._last_ns = max(time.time_ns(), self._last_ns + 1)
            self._seq += 1
            return f"{self._last_ns:020d}-{os.getpid():07d}-{self._seq:08d}{_SUFFIX}"

    def append(self, body: dict[str, Any]) -> str:
        """Durably add one entry; returns its name.

        Raises:
            OSError: the entry could not be written; nothing was added.
        """
        name = self._next_name()
        data = json.dumps({"v": _ENTRY_VERSION, **body}, ensure_ascii=False).encode()
        tmp = self.directory / f"{_TMP_PREFIX}{name}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.directory / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._fsync_dir()
        return name

    def upsert(self, documents: tuple[IndexDocument, ...]) -> str:
        """Raises: OSError."""
        return self.append({"op": "upsert", "documents": [document_to_json(d) for d in documents]})

    def remove(self, aip_ids: tuple[str, ...]) -> str:
        """Raises: OSError."""
        return self.append({"op": "remove", "aip_ids": list(aip_ids)})

    def clear(self) -> str:
        """Raises: OSError."""
        return self.append({"op": "clear"})

    def pending(self) -> list[str]:
        """Names of the entries not yet applied, oldest first.

        Raises:
            OSError: the directory cannot be listed.
        """
        return sorted(n for n in os.listdir(self.directory) if n.endswith(_SUFFIX) and n[0] != ".")

    def read(self, names: list[str], max_documents: int) -> Iterator[Entry]:
        """Decode entries in order, stopping once ``max_documents`` documents were read.

        Entries that vanished meanwhile (applied by a previous writer) are skipped; entries
        that cannot be decoded are moved aside (see the module invariants).
        """
        count = 0
        for name in names:
            if count >= max_documents:
                return
            try:
                raw = (self.directory / name).read_bytes()
            except FileNotFoundError:
                continue
            try:
                entry = _decode(name, raw)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.reject(name, exc)
                continue
            count += max(1, len(entry.documents), len(entry.aip_ids))
            yield entry

    def acknowledge(self, names: list[str]) -> None:
        """Delete applied entries. Raises: OSError."""
        for name in names:
            (self.directory / name).unlink(missing_ok=True)
        self._fsync_dir()

    def sweep_temporaries(self) -> None:
        """Remove ``.tmp-*`` files left by writers that crashed mid-append."""
        cutoff = time.time() - _STALE_TMP_SECONDS
        for path in self.directory.glob(f"{_TMP_PREFIX}*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass

    def reject(self, name: str, exc: Exception) -> None:
        """Move an entry that can never be applied aside (logged as an error)."""
        log.error("moving undecodable index outbox entry %s aside: %s", name, exc)
        self.rejected.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.directory / name, self.rejected / name)

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _decode(name: str, raw: bytes) -> Entry:
    body = json.loads(raw)
    if body["v"] != _ENTRY_VERSION:
        raise ValueError(f"unknown entry version {body['v']!r}")
    op = body["op"]
    if op == "upsert":
        docs = tuple(document_from_json(d) for d in body["documents"])
        return Entry(name, "upsert", documents=docs)
    if op == "remove":
        return Entry(name, "remove", aip_ids=tuple(str(i) for i in body["aip_ids"]))
    if op == "clear":
        return Entry(name, "clear")
    raise ValueError(f"unknown operation {op!r}")
