"""Descriptive metadata of an AIP: Dublin Core terms plus Kluis elements (bytes in, bytes out).

The file ``metadata/descriptive/dc.xml`` is a ``kluis:record`` container (the DCMI XML
guidelines leave the container to the application) holding:

- DCMI terms (``http://purl.org/dc/terms/``) any archival tool understands: ``identifier``
  (``urn:uuid:<aip_id>``), ``title``, ``creator`` (the agency), ``type``, ``issued``,
  ``language`` and ``format``;
- Kluis elements (namespace :data:`KLUIS_NS`) that carry the exact domain values the archive
  relies on: ``owner`` (with ``kind``), ``agency``, ``documentType``, ``agencyRef``,
  ``issuedOn``, ``retentionUntil`` (absent = kept permanently or event date pending) and
  ``retentionRule`` (the selection-list rule that applied at ingest: attributes
  ``listVersion``, ``trigger``, ``action`` and, unless kept permanently, ``period``; the rule
  is the one for ``documentType``; absent in packages archived before lists were recorded).

Invariants: reading takes every value from the Kluis elements (title and language from DC,
which has no Kluis duplicate), so ``read_descriptive(write_descriptive(m)) == m``; the same
input always gives the same bytes; reading goes through the hardened parser.
"""

from __future__ import annotations

from lxml import etree

from archive._xmltext import Children, attr, parse_date, serialise, sub
from archive.errors import InvalidPackageError
from archive.model import DocumentMetadata, OwnerKind
from archive.xml import parse_xml

__all__ = ["DCTERMS_NS", "KLUIS_NS", "read_descriptive", "write_descriptive"]

DCTERMS_NS = "http://purl.org/dc/terms/"
KLUIS_NS = "urn:kluis:xmlns:descriptive:1"
"""Namespace of the Kluis elements. Archived packages keep it forever: never change it."""

_NSMAP = {"kluis": KLUIS_NS, "dcterms": DCTERMS_NS}
_OWNER_KINDS: tuple[OwnerKind, ...] = ("person", "enterprise")


def _k(name: str) -> str:
    return f"{{{KLUIS_NS}}}{name}"


def _dc(name: str) -> str:
    return f"{{{DCTERMS_NS}}}{name}"


def write_descriptive(aip_id: str, meta: DocumentMetadata, *, mime_type: str) -> bytes:
    """Serialise ``meta`` as the package's descriptive metadata file.

    Raises:
        ValueError: a value contains characters XML 1.0 cannot represent.
    """
    root = etree.Element(_k("record"), nsmap=_NSMAP)
    sub(root, _dc("identifier"), f"urn:uuid:{aip_id}")
    sub(root, _dc("title"), meta.title)
    sub(root, _dc("creator"), meta.agency_id)
    sub(root, _dc("type"), meta.document_type)
    sub(root, _dc("issued"), meta.issued_on.isoformat())
    sub(root, _dc("language"), meta.language)
    sub(root, _dc("format"), mime_type)
    sub(root, _k("owner"), meta.owner_id, kind=meta.owner_kind)
    sub(root, _k("agency"), meta.agency_id)
    sub(root, _k("documentType"), meta.document_type)
    sub(root, _k("agencyRef"), meta.agency_ref)
    sub(root, _k("issuedOn"), meta.issued_on.isoformat())
    if meta.retention_until is not None:
        sub(root, _k("retentionUntil"), meta.retention_until.isoformat())
    if meta.retention_list_version is not None:
        rule = {
            "listVersion": meta.retention_list_version,
            "trigger": meta.retention_trigger or "issued_on",
            "action": meta.retention_action or "keep",
        }
        if meta.retention_period is not None:
            rule["period"] = meta.retention_period
        sub(root, _k("retentionRule"), **rule)
    return serialise(root)


def read_descriptive(data: bytes, *, aip_id: str) -> DocumentMetadata:
    """Parse a descriptive metadata file written by :func:`write_descriptive`.

    Raises:
        HostileXmlError: the bytes are not safe, well-formed XML.
        InvalidPackageError: the document is not a Kluis descriptive record.
    """
    root = parse_xml(data)
    if root.tag != _k("record"):
        raise InvalidPackageError(aip_id, f"descriptive metadata root is {root.tag!r}")
    found = Children(root, aip_id=aip_id)
    owner = found.child(_k("owner"))
    kind = owner.get("kind")
    if kind not in _OWNER_KINDS:
        raise InvalidPackageError(aip_id, f"owner kind {kind!r} is not person or enterprise")
    retention = found.optional_text(_k("retentionUntil"))
    rule = found.get(_k("retentionRule"))
    list_version = trigger = action = period = None
    if rule is not None:
        list_version = attr(rule, "listVersion", aip_id=aip_id)
        trigger = attr(rule, "trigger", aip_id=aip_id)
        action = attr(rule, "action", aip_id=aip_id)
        period = rule.get("period")
    return DocumentMetadata(
        owner_id=owner.text or "",
        owner_kind=kind,
        agency_id=found.text(_k("agency")),
        document_type=found.text(_k("documentType")),
        title=found.text(_dc("title")),
        issued_on=parse_date(found.text(_k("issuedOn")), aip_id=aip_id, what="issuedOn"),
        agency_ref=found.text(_k("agencyRef")),
        language=found.text(_dc("language")),
        retention_until=(
            None
            if retention is None
            else parse_date(retention, aip_id=aip_id, what="retentionUntil")
        ),
        retention_list_version=list_version,
        retention_trigger=trigger,
        retention_period=period,
        retention_action=action,
    )
