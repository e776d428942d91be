"""Build the file set of one AIP from a signed PDF and its metadata (pure; no I/O, no clock).

Layout: see :mod:`archive.layout`. The index file (:mod:`archive.index_file`) repeats the
descriptive metadata as JSON for reindex. The extracted text is stored as a second representation
(``rep2``, an access derivative in ``text/plain``, UTF-8) so that reindexing never needs to
parse a PDF and the package stays CSIP-conformant (content lives in representations).

Invariants:
- deterministic: equal :class:`PackageInput` (and software version) give byte-identical
  packages; every time comes from the input, never from the wall clock;
- the root METS is built last, from the final bytes of every other file, and lists each of
  them with its SHA-256 and size (it is the package manifest);
- ``aip_id`` is a canonical lowercase UUID and every path is a valid storage-key suffix.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from importlib import metadata

from archive import layout
from archive.descriptive import read_descriptive, write_descriptive
from archive.errors import InvalidKeyError
from archive.index_file import INDEX_FILE_MIME, write_index_file
from archive.mets import Representation, write_representation_mets, write_root_mets
from archive.model import BuiltPackage, FileEntry, PackageInput
from archive.premis import write_premis
from archive.storage.base import check_key
from archive.xml import SCHEMA_FILES, schema_bytes

__all__ = ["PDF_MIME", "TEXT_MIME", "XML_MIME", "build_aip", "default_software_version"]

PDF_MIME = "application/pdf"
TEXT_MIME = "text/plain"
XML_MIME = "application/xml"


@functools.cache
def default_software_version() -> str:
    """The installed Kluis distribution's version, recorded in every METS header (looked up
    once per process: the lookup scans every installed distribution, ~0.2 ms per package,
    and an upgrade restarts the processes)."""
    try:
        return metadata.version("kluis")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _entry(path: str, data: bytes, mime_type: str) -> FileEntry:
    return FileEntry(path, len(data), hashlib.sha256(data).hexdigest(), mime_type)


def build_aip(inp: PackageInput, *, software_version: str | None = None) -> BuiltPackage:
    """Build every file of the AIP for ``inp``; the root METS is returned separately.

    Raises:
        ValueError: ``aip_id`` is not a canonical lowercase UUID, a datetime is naive, or a
            metadata value contains characters XML cannot hold.
        InvalidKeyError: ``pdf_name`` is not a safe plain file name.
    """
    if str(uuid.UUID(inp.aip_id)) != inp.aip_id:
        raise ValueError(f"aip_id {inp.aip_id!r} is not a canonical lowercase UUID")
    if "/" in inp.pdf_name:
        raise InvalidKeyError(inp.pdf_name, "a PDF name is a plain file name")
    version = software_version or default_software_version()
    pdf_rel = f"data/{inp.pdf_name}"
    text_rel = f"data/{layout.text_name(inp.pdf_name)}"
    check_key(pdf_rel)
    check_key(text_rel)
    files: dict[str, bytes] = {}

    def add(path: str, data: bytes, mime_type: str) -> FileEntry:
        files[path] = data
        return _entry(path, data, mime_type)

    pdf = add(layout.data_path(layout.REP_PDF, inp.pdf_name), inp.signed_pdf, PDF_MIME)
    text = add(
        layout.data_path(layout.REP_TEXT, layout.text_name(inp.pdf_name)),
        inp.text.encode("utf-8"),
        TEXT_MIME,
    )
    descriptive = add(
        layout.DESCRIPTIVE_PATH,
        write_descriptive(inp.aip_id, inp.metadata, mime_type=PDF_MIME),
        XML_MIME,
    )
    # The index file carries the metadata as a reader of dc.xml gets it back, so a reindex
    # from either file projects the same document.
    as_read = read_descriptive(files[layout.DESCRIPTIVE_PATH], aip_id=inp.aip_id)
    index_file = add(
        layout.INDEX_FILE_PATH,
        write_index_file(inp.aip_id, as_read, inp.created_at, text),
        INDEX_FILE_MIME,
    )
    premis = add(
        layout.PREMIS_PATH,
        write_premis(
            aip_id=inp.aip_id,
            pdf=pdf,
            text_file=text,
            original_sha256=inp.original_sha256,
            signature=inp.signature,
            events=inp.events,
            agents=inp.agents,
        ),
        XML_MIME,
    )
    schemas = [
        add(f"{layout.SCHEMAS_DIR}/{name}", schema_bytes(name), XML_MIME) for name in SCHEMA_FILES
    ]
    representations = []
    for rep, entry, rel in ((layout.REP_PDF, pdf, pdf_rel), (layout.REP_TEXT, text, text_rel)):
        rep_mets = write_representation_mets(
            rep=rep,
            created_at=inp.created_at,
            software_version=version,
            data=[FileEntry(rel, entry.size, entry.sha256, entry.mime_type)],
        )
        mets_entry = add(layout.rep_mets_path(rep), rep_mets, XML_MIME)
        representations.append(Representation(name=rep, mets=mets_entry, data=(entry,)))

    root = write_root_mets(
        aip_id=inp.aip_id,
        label=inp.metadata.title,
        created_at=inp.created_at,
        software_version=version,
        submitter=inp.metadata.agency_id,
        descriptive=descriptive,
        premis=premis,
        schemas=schemas,
        representations=representations,
        previous_aip_id=inp.previous_aip_id,
        index_file=index_file,
    )
    return BuiltPackage(aip_id=inp.aip_id, files=dict(sorted(files.items())), root_mets=root)
