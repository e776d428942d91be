"""The tantivy schema of the Kluis index, and the one place that opens a tantivy index.

Fields (``raw`` = the whole value is one term):

============== ============================ ============================================
field          kind                         use
============== ============================ ============================================
aip_id         raw, stored, fast            identity (upsert/remove), tie-break, ``ids()``
owner_key      raw, fast                    citizen filter; an HMAC, never a raw number
agency_id      raw, stored, fast            filter, facet
document_type  raw, stored, fast            filter, facet
agency_ref     raw                          lookup by the agency's own reference
title          raw, stored (basic index)    shown in hits
title_nl       analysed terms               full text, boosted ×2
text_nl        analysed terms, not stored   full text
issued_on      date, stored, fast           range filter, shown in hits
ingested_us    i64 µs since epoch, stored,  newest-first sort and keyset cursor (dates in
               fast                         tantivy fast fields keep only seconds)
year           u64, fast                    facet (year of ``issued_on``)
retention_until date, fast (absent if none) retention queries
on_hold        u64 0/1, fast                retention queries
disposed       u64 0/1, fast                retention queries
id_key         u64, fast                    the first 8 bytes of ``aip_id`` (big-endian):
                                            id-ordered listings sort on it (sorting on a
                                            string fast field costs µs per match)
digest         raw, stored, fast            :func:`search.projection.document_digest`
                                            of the entry (reconcile)
============== ============================ ============================================

Invariants:
    * Every tantivy ``Index`` object is created by :func:`open_index`, which registers the
      ``kluis_nl`` tokenizer on it. tantivy does not persist custom analyzers: an index
      object without the registration fails at commit ("Error getting tokenizer").
    * ``kluis_nl`` only splits on whitespace and lowercases: the text fed to it is already
      analysed by :func:`search.analysis.analyze`, so tantivy never stems a second time.
    * ``<directory>/kluis-index.json`` records :data:`SCHEMA_VERSION` and the analysis
      version the index was built with; a mismatch refuses to open (rebuild required).
"""

from __future__ import annotations

import fcntl
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import tantivy

from search._outbox import utc
from search.analysis import ANALYSIS_VERSION, analyzed
from search.errors import IndexUnavailableError
from search.model import Hit, IndexDocument
from search.projection import document_digest

SCHEMA_VERSION = 3
# 3: title_nl/text_nl keep term frequencies but no positions (nothing queries phrases; the
#    positions cost ~15-20 us per document to index and space on disk).
TOKENIZER = "kluis_nl"
BACKEND = "tantivy"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("aip_id", stored=True, fast=True, tokenizer_name="raw")
    sb.add_text_field("owner_key", fast=True, tokenizer_name="raw")
    sb.add_text_field("agency_id", stored=True, fast=True, tokenizer_name="raw")
    sb.add_text_field("document_type", stored=True, fast=True, tokenizer_name="raw")
    sb.add_text_field("agency_ref", tokenizer_name="raw")
    sb.add_text_field("title", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("title_nl", tokenizer_name=TOKENIZER, index_option="freq")
    sb.add_text_field("text_nl", tokenizer_name=TOKENIZER, index_option="freq")
    sb.add_date_field("issued_on", stored=True, indexed=True, fast=True)
    sb.add_integer_field("ingested_us", stored=True, indexed=True, fast=True)
    sb.add_unsigned_field("year", indexed=True, fast=True)
    sb.add_date_field("retention_until", indexed=True, fast=True)
    sb.add_unsigned_field("on_hold", indexed=True, fast=True)
    sb.add_unsigned_field("disposed", indexed=True, fast=True)
    sb.add_text_field("digest", stored=True, fast=True, tokenizer_name="raw")
    sb.add_unsigned_field("id_key", indexed=True, fast=True)
    return sb.build()


def _analyzer() -> tantivy.TextAnalyzer:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace())
        .filter(tantivy.Filter.lowercase())
        .build()
    )


def open_index(directory: Path) -> tantivy.Index:
    """Open or create the index under ``directory``, with our tokenizer registered.

    Creation is serialised across processes with a lock file, so two processes starting
    at once on an empty directory agree on one index.

    Raises:
        IndexUnavailableError: the directory is unusable, or holds an index built with
            another schema or analysis version (delete it and run ``kluis reindex``).
    """
    want = {"schema": SCHEMA_VERSION, "analysis": ANALYSIS_VERSION}
    marker = directory / "kluis-index.json"
    path = directory / "tantivy"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".create.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not marker.exists():
                if path.exists() and any(path.iterdir()):
                    raise IndexUnavailableError(
                        BACKEND, f"{path} has no {marker.name}; delete it and reindex"
                    )
                path.mkdir(exist_ok=True)
                marker.write_text(json.dumps(want))
            found = json.loads(marker.read_text())
            if found != want:
                raise IndexUnavailableError(
                    BACKEND,
                    f"{directory} was built with {found}, this version needs {want}; "
                    "delete the directory and run `kluis reindex`",
                )
            index = tantivy.Index(build_schema(), path=str(path), reuse=True)
    except (OSError, ValueError) as exc:
        raise IndexUnavailableError(BACKEND, f"cannot open {path}: {exc}") from exc
    index.register_tokenizer(TOKENIZER, _analyzer())
    # Readers reload explicitly before each search (cheap, ~0.2 ms): no watcher thread.
    index.config_reader("Manual")
    return index


def micros(value: datetime) -> int:
    """Microseconds since the epoch (exact, unlike a float timestamp)."""
    return (utc(value) - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def midnight(value: date) -> datetime:
    """``value`` as the datetime tantivy date fields hold (00:00 UTC)."""
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def to_tantivy(doc: IndexDocument, schema: tantivy.Schema) -> tantivy.Document:
    """The tantivy document for ``doc``; the analysed fields are filled here.

    Raises:
        ValueError: a value tantivy cannot hold.
    """
    return tantivy.Document.from_dict(tantivy_fields(doc), schema)


def id_key(aip_id: str) -> int:
    """An u64 whose order agrees with the order of ASCII ids (ties: same 8-byte prefix)."""
    return int.from_bytes(aip_id.encode("ascii")[:8].ljust(8, b"\0"), "big")


def tantivy_fields(doc: IndexDocument) -> dict[str, Any]:
    """The field values of ``doc``'s tantivy document (picklable: the costly analysis can
    run in worker processes; ``tantivy.Document.from_dict`` of them costs ~7 µs, unpickling
    a built ``tantivy.Document`` ~45 µs, so the dict is what travels)."""
    fields: dict[str, Any] = {
        "aip_id": doc.aip_id,
        "owner_key": doc.owner_key,
        "agency_id": doc.agency_id,
        "document_type": doc.document_type,
        "agency_ref": doc.agency_ref,
        "title": doc.title,
        "title_nl": analyzed(doc.title),
        "text_nl": analyzed(doc.text),
        "issued_on": midnight(doc.issued_on),
        "ingested_us": micros(doc.ingested_at),
        "year": doc.issued_on.year,
        "on_hold": int(doc.on_hold),
        "disposed": int(doc.disposed),
        "digest": document_digest(doc),
        "id_key": id_key(doc.aip_id),
    }
    if doc.retention_until is not None:
        fields["retention_until"] = midnight(doc.retention_until)
    return fields


def hit_from_stored(stored: tantivy.Document, score: float) -> Hit:
    """Build a :class:`Hit` from a stored tantivy document."""

    def first(name: str) -> Any:
        values = stored.get_all(name)
        if not values:
            raise IndexUnavailableError(BACKEND, f"stored document lacks {name}")
        return values[0]

    issued: datetime = first("issued_on")
    return Hit(
        aip_id=str(first("aip_id")),
        title=str(first("title")),
        agency_id=str(first("agency_id")),
        document_type=str(first("document_type")),
        issued_on=issued.astimezone(UTC).date(),
        ingested_at=from_micros(int(first("ingested_us"))),
        score=score,
    )
