"""METS documents of an AIP, following E-ARK CSIP 2.1 (bytes in, bytes out, no I/O).

The root METS is the package's manifest: it lists *every* other file with its SHA-256
(``CHECKSUM``/``CHECKSUMTYPE="SHA-256"``) and ``SIZE``. As CSIP prescribes, the descriptive and
preservation metadata files are referenced from ``dmdSec``/``amdSec`` (``mdRef``) and all other
files from the ``fileSec``: one ``Schemas`` group, and one ``Representations/<rep>`` group per
representation holding its METS *and* its data files (CSIP114 allows both), so the root
METS alone binds every byte of the package and its hash is the manifest hash.

Representation METS files list their own data files (paths relative to the representation).

Invariants: element IDs are derived from paths and fixed names only, and all times come from
the caller, so equal input gives equal bytes; reading validates paths as storage-key suffixes
(no ``..``, no absolute paths) and goes through the hardened parser.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import attrgetter

from lxml import etree

from archive._xmltext import attr, format_datetime, parse_datetime, serialise, sub
from archive.errors import InvalidKeyError, InvalidPackageError
from archive.model import FileEntry
from archive.storage.base import check_key
from archive.xml import parse_xml

__all__ = [
    "CONTENT_TYPE_LABEL",
    "CSIP_NS",
    "INDEX_MDTYPE",
    "METS_NS",
    "Representation",
    "RootMets",
    "index_file_declaration",
    "read_root_mets",
    "write_representation_mets",
    "write_root_mets",
]

METS_NS = "http://www.loc.gov/METS/"
XLINK_NS = "http://www.w3.org/1999/xlink"
CSIP_NS = "https://DILCIS.eu/XML/METS/CSIPExtensionMETS"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
PROFILE = "https://earkcsip.dilcis.eu/profile/E-ARK-CSIP.xml"
CONTENT_CATEGORY = "Textual works – Digital"
"""``mets/@TYPE`` from the CSIP content category vocabulary."""
CONTENT_TYPE_LABEL = "Kluis signed document (PDF with PAdES signature)"
"""``@csip:OTHERCONTENTINFORMATIONTYPE``; no CSIP content information type fits a document."""
SOFTWARE_NAME = "Kluis"
INDEX_DMD_ID = "dmd-index"
INDEX_MDTYPE = "KLUIS-INDEX"
"""``OTHERMDTYPE`` of the index file's ``mdRef`` (:mod:`archive.index_file`)."""
PARENT_LABEL = "Parent AIP"
"""structMap division that points to the previous version (E-ARK AIP versioning)."""
_NSMAP = {"mets": METS_NS, "xlink": XLINK_NS, "csip": CSIP_NS, "xsi": XSI_NS}
_SCHEMA_LOCATION = " ".join(
    (
        METS_NS,
        "schemas/mets.xsd",
        XLINK_NS,
        "schemas/xlink.xsd",
        CSIP_NS,
        "schemas/DILCISExtensionMETS.xsd",
    )
)
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _m(name: str) -> str:
    return f"{{{METS_NS}}}{name}"


def _x(name: str) -> str:
    return f"{{{XLINK_NS}}}{name}"


def _c(name: str) -> str:
    return f"{{{CSIP_NS}}}{name}"


@dataclass(frozen=True)
class Representation:
    """One representation as the root METS sees it."""

    name: str
    """Folder name under ``representations/``, e.g. ``rep1``."""
    mets: FileEntry
    data: tuple[FileEntry, ...]


@dataclass(frozen=True)
class RootMets:
    """What :func:`read_root_mets` returns."""

    obj_id: str
    created_at: datetime
    descriptive: FileEntry
    premis: FileEntry
    files: tuple[FileEntry, ...]
    """Every file listed (metadata, schemas, representation METS and data), sorted by path."""
    representations: dict[str, tuple[str, ...]]
    """Representation name -> paths of its data files (its METS excluded)."""
    previous_aip_id: str | None = None
    """The parent AIP (previous version) named in the structMap, if any."""


def _file_id(path: str) -> str:
    return "file-" + _ID_UNSAFE.sub("_", path)


def _root_element(obj_id: str, label: str | None) -> etree._Element:
    attrib = {"OBJID": obj_id}
    if label is not None:
        attrib["LABEL"] = label
    attrib |= {
        "TYPE": CONTENT_CATEGORY,
        _c("CONTENTINFORMATIONTYPE"): "OTHER",
        _c("OTHERCONTENTINFORMATIONTYPE"): CONTENT_TYPE_LABEL,
        "PROFILE": PROFILE,
        f"{{{XSI_NS}}}schemaLocation": _SCHEMA_LOCATION,
    }
    return etree.Element(_m("mets"), attrib, nsmap=_NSMAP)


def _header(root: etree._Element, created: str, software_version: str, submitter: str) -> None:
    hdr = sub(
        root,
        _m("metsHdr"),
        CREATEDATE=created,
        LASTMODDATE=created,
        RECORDSTATUS="NEW",
        **{_c("OAISPACKAGETYPE"): "AIP"},
    )
    agent = sub(hdr, _m("agent"), ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    sub(agent, _m("name"), SOFTWARE_NAME)
    sub(agent, _m("note"), software_version, **{_c("NOTETYPE"): "SOFTWARE VERSION"})
    if submitter:
        agent = sub(hdr, _m("agent"), ROLE="OTHER", OTHERROLE="SUBMITTER", TYPE="ORGANIZATION")
        sub(agent, _m("name"), submitter)


def _checksum_attrs(entry: FileEntry, created: str) -> dict[str, str]:
    return {
        "MIMETYPE": entry.mime_type,
        "SIZE": str(entry.size),
        "CREATED": created,
        "CHECKSUM": entry.sha256,
        "CHECKSUMTYPE": "SHA-256",
    }


def _md_ref(
    parent: etree._Element, entry: FileEntry, mdtype: str, created: str, *, other: str = ""
) -> None:
    sub(
        parent,
        _m("mdRef"),
        ID=_md_ref_id(entry.path),
        LOCTYPE="URL",
        MDTYPE=mdtype,
        **({"OTHERMDTYPE": other} if other else {}),
        **{_x("type"): "simple", _x("href"): entry.path},
        **_checksum_attrs(entry, created),
    )


def _md_ref_id(path: str) -> str:
    return _file_id(path).replace("file-", "mdref-", 1)


def index_file_declaration(entry: FileEntry, created_at: datetime) -> bytes:
    """The exact bytes of the ``mdRef`` start tag :func:`write_root_mets` writes for the
    index file ``entry`` of a package created at ``created_at`` (see
    :func:`archive.index_file.read_index_file`). Kept next to the writer on purpose: the two
    must change together (``tests/unit/archive/test_index_file.py`` checks they agree)."""
    return (
        f'<mets:mdRef ID="{_md_ref_id(entry.path)}" LOCTYPE="URL" MDTYPE="OTHER" '
        f'OTHERMDTYPE="{INDEX_MDTYPE}" xlink:type="simple" xlink:href="{entry.path}" '
        f'MIMETYPE="{entry.mime_type}" SIZE="{entry.size}" '
        f'CREATED="{format_datetime(created_at)}" CHECKSUM="{entry.sha256}" '
        'CHECKSUMTYPE="SHA-256"/>'
    ).encode()


def _file(group: etree._Element, entry: FileEntry, href: str, created: str) -> None:
    element = sub(group, _m("file"), ID=_file_id(entry.path), **_checksum_attrs(entry, created))
    sub(element, _m("FLocat"), LOCTYPE="URL", **{_x("type"): "simple", _x("href"): href})


def write_root_mets(
    *,
    aip_id: str,
    label: str,
    created_at: datetime,
    software_version: str,
    submitter: str,
    descriptive: FileEntry,
    premis: FileEntry,
    schemas: Sequence[FileEntry],
    representations: Sequence[Representation],
    previous_aip_id: str | None = None,
    index_file: FileEntry | None = None,
) -> bytes:
    """Serialise the package's root METS (the manifest).

    ``previous_aip_id`` makes this package a new version of that AIP (E-ARK AIP versioning:
    a structMap division labelled ``Parent AIP`` with a ``mets:mptr`` to its URN).
    ``index_file`` (:mod:`archive.index_file`) gets a second ``dmdSec`` (``MDTYPE="OTHER"``),
    referenced from the metadata division like the first.

    Raises:
        ValueError: ``created_at`` is naive, or a value contains characters XML cannot hold.
    """
    created = format_datetime(created_at)
    root = _root_element(f"urn:uuid:{aip_id}", label)
    _header(root, created, software_version, submitter)
    dmd = sub(root, _m("dmdSec"), ID="dmd-descriptive", CREATED=created, STATUS="CURRENT")
    _md_ref(dmd, descriptive, "DC", created)
    dmd_ids = "dmd-descriptive"
    if index_file is not None:
        dmd_ids += " " + INDEX_DMD_ID
        dmd = sub(root, _m("dmdSec"), ID=INDEX_DMD_ID, CREATED=created, STATUS="CURRENT")
        _md_ref(dmd, index_file, "OTHER", created, other=INDEX_MDTYPE)
    amd = sub(root, _m("amdSec"), ID="amd")
    digiprov = sub(amd, _m("digiprovMD"), ID="digiprov-premis", STATUS="CURRENT")
    _md_ref(digiprov, premis, "PREMIS", created)

    file_sec = sub(root, _m("fileSec"), ID="filesec")
    schema_group = sub(file_sec, _m("fileGrp"), ID="grp-schemas", USE="Schemas")
    for entry in schemas:
        _file(schema_group, entry, entry.path, created)
    for rep in representations:
        group = sub(
            file_sec,
            _m("fileGrp"),
            ID=f"grp-{rep.name}",
            USE=f"Representations/{rep.name}",
            **{
                _c("CONTENTINFORMATIONTYPE"): "OTHER",
                _c("OTHERCONTENTINFORMATIONTYPE"): CONTENT_TYPE_LABEL,
            },
        )
        for entry in (rep.mets, *rep.data):
            _file(group, entry, entry.path, created)

    struct = sub(root, _m("structMap"), ID="structmap-csip", TYPE="PHYSICAL", LABEL="CSIP")
    top = sub(struct, _m("div"), ID="div-package", LABEL=f"urn:uuid:{aip_id}")
    sub(
        top,
        _m("div"),
        ID="div-metadata",
        LABEL="Metadata",
        ADMID="digiprov-premis",
        DMDID=dmd_ids,
    )
    schemas_div = sub(top, _m("div"), ID="div-schemas", LABEL="Schemas")
    sub(schemas_div, _m("fptr"), FILEID="grp-schemas")
    for rep in representations:
        rep_div = sub(top, _m("div"), ID=f"div-{rep.name}", LABEL=f"Representations/{rep.name}")
        sub(
            rep_div,
            _m("mptr"),
            LOCTYPE="URL",
            **{_x("type"): "simple", _x("href"): rep.mets.path, _x("title"): f"grp-{rep.name}"},
        )
    if previous_aip_id is not None:
        parent = sub(top, _m("div"), ID="div-parent-aip", LABEL=PARENT_LABEL)
        sub(
            parent,
            _m("mptr"),
            LOCTYPE="URN",
            **{
                _x("type"): "simple",
                _x("href"): f"urn:uuid:{previous_aip_id}",
                _x("title"): "previous version of this AIP",
            },
        )
    return serialise(root)


def write_representation_mets(
    *, rep: str, created_at: datetime, software_version: str, data: Sequence[FileEntry]
) -> bytes:
    """Serialise a representation METS; ``data`` paths are relative to the representation.

    Raises:
        ValueError: ``created_at`` is naive.
    """
    created = format_datetime(created_at)
    root = _root_element(rep, None)
    _header(root, created, software_version, "")
    file_sec = sub(root, _m("fileSec"), ID="filesec")
    group = sub(file_sec, _m("fileGrp"), ID="grp-data", USE="Data")
    for entry in data:
        _file(group, entry, entry.path, created)
    struct = sub(root, _m("structMap"), ID="structmap-csip", TYPE="PHYSICAL", LABEL="CSIP")
    top = sub(struct, _m("div"), ID="div-representation", LABEL=rep)
    data_div = sub(top, _m("div"), ID="div-data", LABEL="Data")
    sub(data_div, _m("fptr"), FILEID="grp-data")
    return serialise(root)


def read_root_mets(data: bytes, *, aip_id: str) -> RootMets:
    """Parse a root METS written by :func:`write_root_mets`.

    Sections are found by walking the children once, not with ``find`` paths (lxml runs
    those through Python-level ElementPath; this is the hot path of every package read).

    Raises:
        HostileXmlError: the bytes are not safe, well-formed XML.
        InvalidPackageError: it is not a Kluis AIP root METS, or lists an unsafe path or a
            checksum other than SHA-256.
    """
    root = parse_xml(data, keep_blank_text=False)  # attributes only: see parse_xml
    if root.tag != _MT_METS:
        raise InvalidPackageError(aip_id, f"root element is {root.tag!r}, not mets:mets")
    header = descriptive_ref = premis_ref = None
    other_refs: list[etree._Element] = []
    groups: list[etree._Element] = []
    divs: list[etree._Element] = []
    for section in root:
        tag = section.tag
        # ``is None``, never truthiness: an lxml element without children is falsy.
        if tag == _MT_HDR:
            header = section if header is None else header
        elif tag == _MT_DMD:
            if descriptive_ref is None:
                descriptive_ref = _first_child(section, _MT_MDREF)
            else:  # the index file (``index_file``): listed like every other file
                other_refs.extend(section.iterchildren(_MT_MDREF))
        elif tag == _MT_AMD:
            for digiprov in section.iterchildren(_MT_DIGIPROV):
                if premis_ref is None:
                    premis_ref = _first_child(digiprov, _MT_MDREF)
        elif tag == _MT_FILESEC:
            groups.extend(section.iterchildren(_MT_FILEGRP))
        elif tag == _MT_STRUCTMAP:
            for top in section.iterchildren(_MT_DIV):
                divs.extend(top.iterchildren(_MT_DIV))
    if header is None:
        raise InvalidPackageError(aip_id, "missing element metsHdr in mets")
    if header.get(_CT_PACKAGETYPE) != "AIP":
        raise InvalidPackageError(aip_id, "metsHdr does not declare an AIP")
    created_at = parse_datetime(
        attr(header, "CREATEDATE", aip_id=aip_id), aip_id=aip_id, what="CREATEDATE"
    )
    descriptive = _read_md_ref(descriptive_ref, "dmdSec", aip_id)
    premis = _read_md_ref(premis_ref, "digiprovMD", aip_id)
    files = [descriptive, premis]
    files.extend(_read_md_ref(ref, "dmdSec", aip_id) for ref in other_refs)
    representations: dict[str, tuple[str, ...]] = {}
    for group in groups:
        entries = _read_files(group, aip_id)
        files.extend(entries)
        use = group.get("USE", "")
        if use.startswith("Representations/"):
            name = use.removeprefix("Representations/")
            mets_path = f"representations/{name}/METS.xml"
            representations[name] = tuple(e.path for e in entries if e.path != mets_path)
    if len({f.path for f in files}) != len(files):
        raise InvalidPackageError(aip_id, "the root METS lists a path twice")
    previous = None
    for div in divs:
        if div.get("LABEL") == PARENT_LABEL:
            pointer = _first_child(div, _MT_MPTR)
            href = "" if pointer is None else (pointer.get(_XL_HREF) or "")
            if not href.startswith("urn:uuid:"):
                raise InvalidPackageError(aip_id, f"parent AIP pointer {href!r} is not a URN")
            previous = href.removeprefix("urn:uuid:")
    return RootMets(
        obj_id=attr(root, "OBJID", aip_id=aip_id),
        created_at=created_at,
        descriptive=descriptive,
        premis=premis,
        files=tuple(sorted(files, key=_PATH)),
        representations=representations,
        previous_aip_id=previous,
    )


_MT_METS = _m("mets")
_MT_HDR = _m("metsHdr")
_MT_DMD = _m("dmdSec")
_MT_AMD = _m("amdSec")
_MT_DIGIPROV = _m("digiprovMD")
_MT_MDREF = _m("mdRef")
_MT_FILESEC = _m("fileSec")
_MT_FILEGRP = _m("fileGrp")
_MT_FILE = _m("file")
_MT_FLOCAT = _m("FLocat")
_MT_STRUCTMAP = _m("structMap")
_MT_DIV = _m("div")
_MT_MPTR = _m("mptr")
_XL_HREF = _x("href")
_PATH = attrgetter("path")
_CT_PACKAGETYPE = _c("OAISPACKAGETYPE")


def _first_child(parent: etree._Element, tag: str) -> etree._Element | None:
    return next(parent.iterchildren(tag), None)


def _read_md_ref(element: etree._Element | None, section: str, aip_id: str) -> FileEntry:
    if element is None:
        raise InvalidPackageError(aip_id, f"root METS has no {section} with an mdRef")
    return _entry(element, attr(element, _XL_HREF, aip_id=aip_id), aip_id)


def _read_files(group: etree._Element, aip_id: str) -> list[FileEntry]:
    """The ``file`` children of a ``fileGrp``: one loop, no call per file but ``_entry``
    (this runs for every file of every package read)."""
    entries = []
    for element in group.iterchildren(_MT_FILE):
        # FLocat is the only child we write: index it (no iterator), search only otherwise.
        location = element[0] if len(element) else None
        if location is None or location.tag != _MT_FLOCAT:
            location = _first_child(element, _MT_FLOCAT)
            if location is None:
                raise InvalidPackageError(aip_id, "missing element FLocat in file")
        href = location.get(_XL_HREF)
        if href is None:
            href = attr(location, _XL_HREF, aip_id=aip_id)  # raises, naming it
        entries.append(_entry(element, href, aip_id))
    return entries


@lru_cache(maxsize=4096)
def _unsafe_path(href: str) -> str | None:
    """Why ``href`` is not a safe storage-key suffix, or None (cached: every package lists
    the same few paths)."""
    try:
        check_key(href)
    except InvalidKeyError as exc:
        return str(exc)
    return None


def _entry(element: etree._Element, href: str, aip_id: str) -> FileEntry:
    unsafe = _unsafe_path(href)
    if unsafe is not None:
        raise InvalidPackageError(aip_id, f"unsafe path in METS: {unsafe}")
    get = element.get  # plain gets; ``attr`` only to word the error of a missing one
    if get("CHECKSUMTYPE") != "SHA-256":
        attr(element, "CHECKSUMTYPE", aip_id=aip_id)
        raise InvalidPackageError(aip_id, f"{href}: checksum type is not SHA-256")
    size = get("SIZE") or attr(element, "SIZE", aip_id=aip_id)
    if not size.isdigit():
        raise InvalidPackageError(aip_id, f"{href}: SIZE {size!r} is not a number")
    checksum = get("CHECKSUM") or attr(element, "CHECKSUM", aip_id=aip_id)
    mime_type = get("MIMETYPE") or attr(element, "MIMETYPE", aip_id=aip_id)
    return FileEntry(href, int(size), checksum.lower(), mime_type)  # path, size, sha256, mime
