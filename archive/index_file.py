"""The package's index file: what the search projection needs, readable without XML.

``metadata/descriptive/index.json`` (:data:`archive.layout.INDEX_FILE_PATH`) holds, as
canonical JSON, the package's descriptive metadata exactly as :func:`read_descriptive`
reads it back from ``dc.xml``, its creation time and the entry (path, size, SHA-256) of its
text file. :func:`archive.package.build_aip` writes it from the same input as ``dc.xml``;
the root METS lists it like any other metadata file (a second ``dmdSec``, ``MDTYPE="OTHER"``),
so fixity checks it and it is as immutable as the rest of the package.

Why: rebuilding the search index read each package's root METS and ``dc.xml`` through lxml,
~150 µs of CPU per document, most of a rebuild's reading. With this file a reindex reads
three small files (root METS, this file, the text) and parses none of them as XML.

What a reindex trusts, and why that is sound: :func:`read_index_file` accepts the file only
when the committed root METS *declares* it with exactly its size and SHA-256. Instead of
parsing the root METS, it looks for the exact ``mdRef`` start tag the writer emits for this
file (:func:`archive.mets.index_file_declaration`). A match is that element and not text
that merely looks like it: the root METS must contain no ``<!`` (comments, CDATA, DOCTYPE)
and no processing instruction after its XML declaration, and XML escapes ``<`` everywhere
else, so every ``<`` left starts a tag; the match must also be the only mention of the
file's path. SHA-256 then binds these bytes to the manifest the package was committed with,
and the file names its own package (checked against the id asked for). What this does not
check is the rest of the root METS's well-formedness; that stays the fixity job's
(``AipStore.verify``), as it is for every file a reindex does not read.

Anything else returns ``None`` and the caller takes the full path (parse the root METS and
``dc.xml``): no file (a package archived before it existed), a file the root METS does not
declare as it is (damaged, or replaced), an unknown format. So this path can only ever yield
what the full path yields (tested on built packages), or the full path runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from archive import layout
from archive._xmltext import format_datetime, parse_datetime
from archive.errors import ArchiveError
from archive.mets import index_file_declaration
from archive.model import DocumentMetadata, FileEntry
from archive.storage.base import check_key

__all__ = ["FORMAT", "INDEX_FILE_MIME", "IndexFile", "read_index_file", "write_index_file"]

FORMAT = "kluis-index/1"
"""The ``format`` member. A reader that meets another value takes the full path; changing
the content means a new value (archived files keep theirs forever)."""
INDEX_FILE_MIME = "application/json"


@dataclass(frozen=True)
class IndexFile:
    """An index file the root METS declares, decoded."""

    aip_id: str
    metadata: DocumentMetadata
    created_at: datetime
    text: FileEntry
    """The package's text file as the root METS lists it."""


def write_index_file(
    aip_id: str, metadata: DocumentMetadata, created_at: datetime, text: FileEntry
) -> bytes:
    """The index file's bytes: canonical JSON (sorted keys, no spaces, UTF-8), so equal
    input gives equal bytes. ``metadata`` must be as read back from ``dc.xml``
    (:func:`archive.package.build_aip` passes exactly that).

    Raises:
        ValueError: ``created_at`` is naive.
    """
    m = metadata
    record = {
        "format": FORMAT,
        "aip_id": aip_id,
        "created_at": format_datetime(created_at),
        "metadata": {
            "owner_id": m.owner_id,
            "owner_kind": m.owner_kind,
            "agency_id": m.agency_id,
            "document_type": m.document_type,
            "title": m.title,
            "issued_on": m.issued_on.isoformat(),
            "agency_ref": m.agency_ref,
            "language": m.language,
            "retention_until": m.retention_until.isoformat() if m.retention_until else None,
            "retention_list_version": m.retention_list_version,
            "retention_trigger": m.retention_trigger,
            "retention_period": m.retention_period,
            "retention_action": m.retention_action,
        },
        "text": {
            "path": text.path,
            "size": text.size,
            "sha256": text.sha256,
            "mime_type": text.mime_type,
        },
    }
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def read_index_file(aip_id: str, data: bytes, root_mets: bytes) -> IndexFile | None:
    """The decoded index file ``data`` of package ``aip_id`` if its root METS (the bytes
    ``root_mets``) declares it as it is and it is a known format naming this package; else
    None (the caller reads the package the full way). See the module docstring.

    Never raises for any bytes.
    """
    entry = FileEntry(
        layout.INDEX_FILE_PATH, len(data), hashlib.sha256(data).hexdigest(), INDEX_FILE_MIME
    )
    try:
        record = json.loads(data)
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return None
        if record["aip_id"] != aip_id:
            return None
        created_at = parse_datetime(record["created_at"], aip_id=aip_id, what="created_at")
        if not _declared(root_mets, entry, created_at):
            return None
        return IndexFile(
            aip_id=aip_id,
            metadata=_metadata(record["metadata"]),
            created_at=created_at,
            text=_text_entry(record["text"]),
        )
    except (ArchiveError, KeyError, TypeError, ValueError):
        return None  # not one of ours as it should be: the full path decides


_NOT_A_TAG = re.compile(rb"<[!?]")
"""Where a ``<`` may start something other than a tag: a comment, CDATA, a DOCTYPE, a
processing instruction (one regex pass: ``b"<!" in`` alone cost twice as much, XML being
full of ``<``)."""


def _declared(root_mets: bytes, entry: FileEntry, created_at: datetime) -> bool:
    """Whether ``root_mets`` declares ``entry`` (see the module docstring)."""
    if not root_mets.startswith(b"<?xml ") or _NOT_A_TAG.search(root_mets, 1):
        return False
    if root_mets.count(f'"{entry.path}"'.encode()) != 1:
        return False
    return index_file_declaration(entry, created_at) in root_mets


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else _string(value)


def _metadata(m: dict[str, Any]) -> DocumentMetadata:
    kind = m["owner_kind"]
    if kind not in ("person", "enterprise"):
        raise ValueError(f"owner kind {kind!r}")
    retention = _optional(m["retention_until"])
    return DocumentMetadata(
        owner_id=_string(m["owner_id"]),
        owner_kind=kind,
        agency_id=_string(m["agency_id"]),
        document_type=_string(m["document_type"]),
        title=_string(m["title"]),
        issued_on=date.fromisoformat(_string(m["issued_on"])),
        agency_ref=_string(m["agency_ref"]),
        language=_string(m["language"]),
        retention_until=None if retention is None else date.fromisoformat(retention),
        retention_list_version=_optional(m["retention_list_version"]),
        retention_trigger=_optional(m["retention_trigger"]),
        retention_period=_optional(m["retention_period"]),
        retention_action=_optional(m["retention_action"]),
    )


def _text_entry(t: dict[str, Any]) -> FileEntry:
    size = t["size"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise TypeError("size")
    path = check_key(_string(t["path"]))  # it becomes a storage key: InvalidKeyError
    return FileEntry(path, size, _string(t["sha256"]), _string(t["mime_type"]))
