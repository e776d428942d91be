"""Where everything lives inside a Kluis AIP (E-ARK CSIP 2.x layout, one document = one AIP).

::

    METS.xml                                root METS, written last (commit marker)
    metadata/descriptive/dc.xml             Dublin Core terms + Kluis elements
    metadata/descriptive/index.json         what the search index needs, as JSON (absent
                                            in older packages; see archive.index_file)
    metadata/preservation/premis.xml        PREMIS 3: objects, fixity, signature, events, agents
    representations/rep1/METS.xml           preservation representation
    representations/rep1/data/<pdf_name>    the signed PDF
    representations/rep2/METS.xml           access derivative
    representations/rep2/data/<stem>.txt    plain text extracted from the PDF (UTF-8)
    schemas/*.xsd                           the XSDs the METS files reference

Invariants: every path is a valid storage-key suffix; the two representation names and the
metadata paths never change once packages exist (readers of old packages rely on them).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from archive.errors import InvalidKeyError
from archive.storage.base import check_key

__all__ = [
    "DESCRIPTIVE_PATH",
    "INDEX_FILE_PATH",
    "PREMIS_PATH",
    "REP_PDF",
    "REP_TEXT",
    "ROOT_METS",
    "SCHEMAS_DIR",
    "aip_key",
    "aip_prefix",
    "data_path",
    "rep_mets_path",
    "text_name",
]

ROOT_METS = "METS.xml"
DESCRIPTIVE_PATH = "metadata/descriptive/dc.xml"
INDEX_FILE_PATH = "metadata/descriptive/index.json"
"""Absent in packages archived before it existed: readers fall back (archive.index_file)."""
PREMIS_PATH = "metadata/preservation/premis.xml"
SCHEMAS_DIR = "schemas"
REP_PDF = "rep1"
"""The preservation representation: the signed PDF."""
REP_TEXT = "rep2"
"""The access derivative: the extracted plain text, so reindexing never parses PDFs."""


def rep_mets_path(rep: str) -> str:
    return f"representations/{rep}/METS.xml"


def data_path(rep: str, name: str) -> str:
    return f"representations/{rep}/data/{name}"


def text_name(pdf_name: str) -> str:
    """``document.pdf`` -> ``document.txt``; any other name gets ``.txt`` appended."""
    path = PurePosixPath(pdf_name)
    return f"{path.stem}.txt" if path.suffix.lower() == ".pdf" else f"{pdf_name}.txt"


def aip_prefix(aip_id: str) -> str:
    """The storage prefix of one package, ``aips/<aip_id>/``.

    Raises:
        InvalidKeyError: ``aip_id`` is not a safe single key segment.
    """
    if "/" in aip_id:
        raise InvalidKeyError(aip_id, "an AIP id is a single key segment")
    check_key(f"aips/{aip_id}")
    return f"aips/{aip_id}/"


def aip_key(aip_id: str, path: str) -> str:
    """The storage key of ``path`` inside package ``aip_id``: ``aips/<aip_id>/<path>``.

    Raises:
        InvalidKeyError: the id or the path is not safe.
    """
    if "/" in aip_id:
        raise InvalidKeyError(aip_id, "an AIP id is a single key segment")
    return check_key(f"aips/{aip_id}/{path}")  # checks the id's segment too: one match
