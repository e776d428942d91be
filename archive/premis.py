"""PREMIS 3 preservation metadata of an AIP (bytes in, bytes out, no I/O).

``metadata/preservation/premis.xml`` holds, in PREMIS order (objects, events, agents):

- one ``intellectualEntity`` object (``urn:uuid:<aip_id>``);
- one ``file`` object per content file (the signed PDF and its text derivative), identified
  by its path inside the package (type ``local``), with SHA-256 fixity, size and format
  (MIME type as ``formatName``). The text object has a ``derivation`` relationship to the PDF;
- on the PDF object:
  - ``significantProperties`` of type :data:`ORIGINAL_SHA256_TYPE`: the SHA-256 of the PDF as
    the agency submitted it. It is a property the archive promises to preserve (revision 1
    of the signed PDF must keep hashing to it), hence a significant property rather than a
    relationship to an object that is not stored separately;
  - ``signatureInformation/signature``: encoding ``PAdES``, ``signer`` = RFC 4514 subject,
    and ``signatureProperties`` entries ``level=…``, ``signingTime=…`` and
    ``certificateSha256=…`` (the machine-readable values; ``signatureMethod`` repeats the
    level for humans). The signature value itself lives in the PDF;
- the events and agents of :class:`PackageInput` in the given order; events link to their
  agents and to the PDF object.

Invariants: identifiers are of type ``local``; times are UTC; reading returns exactly what was
written (round trip); reading goes through the hardened parser.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from archive._xmltext import (
    Children,
    child,
    format_datetime,
    optional_text,
    parse_datetime,
    serialise,
    sub,
    text,
)
from archive.errors import InvalidPackageError
from archive.model import Agent, FileEntry, PremisEvent, SignatureInfo
from archive.xml import parse_xml

__all__ = [
    "ORIGINAL_SHA256_TYPE",
    "PREMIS_NS",
    "PremisRecord",
    "read_event_record",
    "read_premis",
    "write_event_record",
    "write_premis",
]

PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ORIGINAL_SHA256_TYPE = "original submission SHA-256"
_NSMAP = {"premis": PREMIS_NS, "xsi": XSI_NS}
_XSI_TYPE = f"{{{XSI_NS}}}type"
_AgentType = Literal["organization", "software", "person"]
_Outcome = Literal["success", "failure"]
_AGENT_TYPES: tuple[_AgentType, ...] = ("organization", "software", "person")
_OUTCOMES: tuple[_Outcome, ...] = ("success", "failure")


def _p(name: str) -> str:
    return f"{{{PREMIS_NS}}}{name}"


@dataclass(frozen=True)
class PremisRecord:
    """What :func:`read_premis` returns."""

    aip_id: str
    objects: tuple[FileEntry, ...]
    """Content files as PREMIS records them (path, size, SHA-256, format)."""
    original_sha256: str
    signature: SignatureInfo
    events: tuple[PremisEvent, ...]
    agents: tuple[Agent, ...]


def write_premis(
    *,
    aip_id: str,
    pdf: FileEntry,
    text_file: FileEntry,
    original_sha256: str,
    signature: SignatureInfo,
    events: Sequence[PremisEvent],
    agents: Sequence[Agent],
) -> bytes:
    """Serialise the package's PREMIS document.

    Raises:
        ValueError: a datetime is naive, or a value contains characters XML cannot hold.
    """
    root = etree.Element(_p("premis"), nsmap=_NSMAP, version="3.0")
    entity = sub(root, _p("object"), **{_XSI_TYPE: "premis:intellectualEntity"})
    _identifier(entity, "object", "UUID", f"urn:uuid:{aip_id}")

    pdf_obj = _file_object(root, pdf, original_sha256=original_sha256)
    sig = sub(sub(pdf_obj, _p("signatureInformation")), _p("signature"))
    sub(sig, _p("signatureEncoding"), "PAdES")
    sub(sig, _p("signer"), signature.signer_subject)
    sub(sig, _p("signatureMethod"), f"PAdES baseline {signature.level}")
    sub(sig, _p("signatureValue"), "embedded in the PDF signature dictionary")
    sub(sig, _p("signatureValidationRules"), "ETSI EN 319 142-1 (PAdES baseline)")
    sub(sig, _p("signatureProperties"), f"level={signature.level}")
    sub(sig, _p("signatureProperties"), f"signingTime={format_datetime(signature.signed_at)}")
    sub(sig, _p("signatureProperties"), f"certificateSha256={signature.certificate_sha256}")

    text_obj = _file_object(root, text_file)
    rel = sub(text_obj, _p("relationship"))
    sub(rel, _p("relationshipType"), "derivation")
    sub(rel, _p("relationshipSubType"), "has source")
    related = sub(rel, _p("relatedObjectIdentifier"))
    sub(related, _p("relatedObjectIdentifierType"), "local")
    sub(related, _p("relatedObjectIdentifierValue"), pdf.path)

    for event in events:
        _event(root, event, pdf.path)
    for agent in agents:
        element = sub(root, _p("agent"))
        _identifier(element, "agent", "local", agent.identifier)
        sub(element, _p("agentName"), agent.name)
        sub(element, _p("agentType"), agent.agent_type)
    return serialise(root)


def _identifier(parent: etree._Element, kind: str, id_type: str, value: str) -> None:
    element = sub(parent, _p(f"{kind}Identifier"))
    sub(element, _p(f"{kind}IdentifierType"), id_type)
    sub(element, _p(f"{kind}IdentifierValue"), value)


def _file_object(
    root: etree._Element, entry: FileEntry, *, original_sha256: str | None = None
) -> etree._Element:
    # PREMIS 3 order inside a file object: identifier, significantProperties,
    # objectCharacteristics, ..., signatureInformation, ..., relationship.
    obj = sub(root, _p("object"), **{_XSI_TYPE: "premis:file"})
    _identifier(obj, "object", "local", entry.path)
    if original_sha256 is not None:
        props = sub(obj, _p("significantProperties"))
        sub(props, _p("significantPropertiesType"), ORIGINAL_SHA256_TYPE)
        sub(props, _p("significantPropertiesValue"), original_sha256)
    chars = sub(obj, _p("objectCharacteristics"))
    sub(chars, _p("compositionLevel"), "0")
    fixity = sub(chars, _p("fixity"))
    sub(fixity, _p("messageDigestAlgorithm"), "SHA-256")
    sub(fixity, _p("messageDigest"), entry.sha256)
    sub(fixity, _p("messageDigestOriginator"), "Kluis")
    sub(chars, _p("size"), str(entry.size))
    designation = sub(sub(chars, _p("format")), _p("formatDesignation"))
    sub(designation, _p("formatName"), entry.mime_type)
    return obj


def _event(root: etree._Element, event: PremisEvent, object_path: str) -> None:
    element = sub(root, _p("event"))
    _identifier(element, "event", "local", event.identifier)
    sub(element, _p("eventType"), event.event_type)
    sub(element, _p("eventDateTime"), format_datetime(event.at))
    if event.detail:
        sub(sub(element, _p("eventDetailInformation")), _p("eventDetail"), event.detail)
    sub(sub(element, _p("eventOutcomeInformation")), _p("eventOutcome"), event.outcome)
    for agent_id in event.agent_ids:
        link = sub(element, _p("linkingAgentIdentifier"))
        sub(link, _p("linkingAgentIdentifierType"), "local")
        sub(link, _p("linkingAgentIdentifierValue"), agent_id)
    link = sub(element, _p("linkingObjectIdentifier"))
    sub(link, _p("linkingObjectIdentifierType"), "local")
    sub(link, _p("linkingObjectIdentifierValue"), object_path)


def read_premis(data: bytes, *, aip_id: str) -> PremisRecord:
    """Parse a PREMIS document written by :func:`write_premis`.

    Every lookup walks children directly (no ``find`` paths: lxml runs those through
    Python-level ElementPath, and this runs on every package read).

    Raises:
        HostileXmlError: the bytes are not safe, well-formed XML.
        InvalidPackageError: the document lacks what a Kluis package must record.
    """
    root = parse_xml(data)
    if root.tag != _P_PREMIS:
        raise InvalidPackageError(aip_id, f"PREMIS root element is {root.tag!r}")
    objects: list[FileEntry] = []
    original: str | None = None
    signature: SignatureInfo | None = None
    events: list[PremisEvent] = []
    agents: list[Agent] = []
    for element in root:
        tag = element.tag
        if tag == _P_EVENT:
            events.append(_read_event(element, aip_id))
        elif tag == _P_AGENT:
            agents.append(_read_agent(element, aip_id))
        elif tag == _P_OBJECT and element.get(_XSI_TYPE) == "premis:file":
            found = Children(element, aip_id=aip_id)
            objects.append(_read_file_object(found, aip_id))
            for props in element.iterchildren(_P_SIGNIFICANT):
                if optional_text(props, _P_SIGNIFICANT_TYPE) == ORIGINAL_SHA256_TYPE:
                    original = text(props, _P_SIGNIFICANT_VALUE, aip_id=aip_id)
            sig = _nested(element, _P_SIGNATURE_INFO, _P_SIGNATURE)
            if sig is not None:
                signature = _read_signature(sig, aip_id)
    if original is None or signature is None:
        raise InvalidPackageError(aip_id, "PREMIS lacks the original SHA-256 or the signature")
    return PremisRecord(
        aip_id=aip_id,
        objects=tuple(objects),
        original_sha256=original,
        signature=signature,
        events=tuple(events),
        agents=tuple(agents),
    )


_P_PREMIS = _p("premis")
_P_OBJECT = _p("object")
_P_EVENT = _p("event")
_P_AGENT = _p("agent")
_P_SIGNIFICANT = _p("significantProperties")
_P_SIGNIFICANT_TYPE = _p("significantPropertiesType")
_P_SIGNIFICANT_VALUE = _p("significantPropertiesValue")
_P_SIGNATURE_INFO = _p("signatureInformation")
_P_SIGNATURE = _p("signature")
_P_SIGNATURE_PROPERTIES = _p("signatureProperties")
_P_SIGNER = _p("signer")
_P_OBJECT_ID = _p("objectIdentifier")
_P_OBJECT_ID_VALUE = _p("objectIdentifierValue")
_P_CHARACTERISTICS = _p("objectCharacteristics")
_P_FIXITY = _p("fixity")
_P_DIGEST = _p("messageDigest")
_P_SIZE = _p("size")
_P_FORMAT = _p("format")
_P_FORMAT_DESIGNATION = _p("formatDesignation")
_P_FORMAT_NAME = _p("formatName")
_P_EVENT_ID = _p("eventIdentifier")
_P_EVENT_ID_VALUE = _p("eventIdentifierValue")
_P_EVENT_TYPE = _p("eventType")
_P_EVENT_DATETIME = _p("eventDateTime")
_P_OUTCOME_INFO = _p("eventOutcomeInformation")
_P_OUTCOME = _p("eventOutcome")
_P_DETAIL_INFO = _p("eventDetailInformation")
_P_DETAIL = _p("eventDetail")
_P_LINK_AGENT = _p("linkingAgentIdentifier")
_P_LINK_AGENT_VALUE = _p("linkingAgentIdentifierValue")
_P_AGENT_ID = _p("agentIdentifier")
_P_AGENT_ID_VALUE = _p("agentIdentifierValue")
_P_AGENT_NAME = _p("agentName")
_P_AGENT_TYPE = _p("agentType")


def _nested(parent: etree._Element, *tags: str) -> etree._Element | None:
    """``parent.find("a/b/...")`` (the first match in document order) without ElementPath."""
    head, *rest = tags
    for element in parent.iterchildren(head):
        found = _nested(element, *rest) if rest else element
        if found is not None:
            return found
    return None


def _read_file_object(obj: Children, aip_id: str) -> FileEntry:
    ident = obj.child(_P_OBJECT_ID)
    chars = obj.child(_P_CHARACTERISTICS)
    fixity = child(chars, _P_FIXITY, aip_id=aip_id)
    fmt = _nested(chars, _P_FORMAT, _P_FORMAT_DESIGNATION, _P_FORMAT_NAME)
    size = text(chars, _P_SIZE, aip_id=aip_id)
    if not size.isdigit():
        raise InvalidPackageError(aip_id, f"PREMIS size {size!r} is not a number")
    return FileEntry(
        path=text(ident, _P_OBJECT_ID_VALUE, aip_id=aip_id),
        size=int(size),
        sha256=text(fixity, _P_DIGEST, aip_id=aip_id),
        mime_type="" if fmt is None else (fmt.text or ""),
    )


def _read_signature(sig: etree._Element, aip_id: str) -> SignatureInfo:
    props: dict[str, str] = {}
    for prop in sig.iterchildren(_P_SIGNATURE_PROPERTIES):
        key, sep, value = (prop.text or "").partition("=")
        if sep:
            props[key] = value
    missing = {"level", "signingTime", "certificateSha256"} - props.keys()
    if missing:
        raise InvalidPackageError(aip_id, f"PREMIS signature lacks {sorted(missing)}")
    return SignatureInfo(
        level=props["level"],
        signed_at=parse_datetime(props["signingTime"], aip_id=aip_id, what="signingTime"),
        signer_subject=text(sig, _P_SIGNER, aip_id=aip_id),
        certificate_sha256=props["certificateSha256"],
    )


def _read_event(element: etree._Element, aip_id: str) -> PremisEvent:
    # One pass over the children (an event is most of a PREMIS file): the first of each
    # part counts, as with ``find``; every linked agent's value counts.
    ident: etree._Element | None = None
    kind: str | None = None
    at: str | None = None
    detail: str | None = None
    outcome_text: str | None = None
    agents: list[str] = []
    for part in element:
        tag = part.tag
        if tag == _P_EVENT_ID:
            ident = part if ident is None else ident
        elif tag == _P_EVENT_TYPE:
            kind = (part.text or "") if kind is None else kind
        elif tag == _P_EVENT_DATETIME:
            at = (part.text or "") if at is None else at
        elif tag == _P_DETAIL_INFO:
            detail = _first_text(part, _P_DETAIL) if detail is None else detail
        elif tag == _P_OUTCOME_INFO:
            outcome_text = _first_text(part, _P_OUTCOME) if outcome_text is None else outcome_text
        elif tag == _P_LINK_AGENT:
            agents.extend(v.text or "" for v in part if v.tag == _P_LINK_AGENT_VALUE)
    if ident is None:
        raise InvalidPackageError(aip_id, "missing element eventIdentifier in event")
    outcome = next((o for o in _OUTCOMES if o == outcome_text), None)
    if outcome is None:
        raise InvalidPackageError(aip_id, f"PREMIS event outcome {outcome_text!r} is not known")
    if kind is None:
        raise InvalidPackageError(aip_id, "missing element eventType in event")
    if at is None:
        raise InvalidPackageError(aip_id, "missing element eventDateTime in event")
    return PremisEvent(
        identifier=text(ident, _P_EVENT_ID_VALUE, aip_id=aip_id),
        event_type=kind,
        at=parse_datetime(at, aip_id=aip_id, what="eventDateTime"),
        outcome=outcome,
        detail=detail or "",
        agent_ids=tuple(agents),
    )


def _first_text(parent: etree._Element, tag: str) -> str | None:
    """The text of ``parent``'s first child ``tag`` ('' when empty), None without one."""
    for element in parent:
        if element.tag == tag:
            return element.text or ""
    return None


def _read_agent(element: etree._Element, aip_id: str) -> Agent:
    found = Children(element, aip_id=aip_id)
    kind = found.text(_P_AGENT_TYPE)
    agent_type = next((t for t in _AGENT_TYPES if t == kind), None)
    if agent_type is None:
        raise InvalidPackageError(aip_id, f"PREMIS agent type {kind!r} is not known")
    return Agent(
        identifier=text(found.child(_P_AGENT_ID), _P_AGENT_ID_VALUE, aip_id=aip_id),
        name=found.text(_P_AGENT_NAME),
        agent_type=agent_type,
    )


def write_event_record(*, aip_id: str, event: PremisEvent, object_path: str) -> bytes:
    """A PREMIS document holding one event about package ``aip_id`` (an event record).

    Events that happen after ingest are stored as such records next to the package, never by
    rewriting the package's own PREMIS file (which is fixed by the root METS's checksum).

    Raises:
        ValueError: a datetime is naive, or a value contains characters XML cannot hold.
    """
    root = etree.Element(_p("premis"), nsmap=_NSMAP, version="3.0")
    entity = sub(root, _p("object"), **{_XSI_TYPE: "premis:intellectualEntity"})
    _identifier(entity, "object", "UUID", f"urn:uuid:{aip_id}")
    _event(root, event, object_path)
    return serialise(root)


def read_event_record(data: bytes, *, aip_id: str) -> PremisEvent:
    """Parse a record written by :func:`write_event_record`.

    Raises:
        HostileXmlError: the bytes are not safe, well-formed XML.
        InvalidPackageError: not a one-event PREMIS record of this package.
    """
    root = parse_xml(data)
    entity = root.findtext(f"{_p('object')}/{_p('objectIdentifier')}/{_p('objectIdentifierValue')}")
    events = root.findall(_p("event"))
    if root.tag != _p("premis") or entity != f"urn:uuid:{aip_id}" or len(events) != 1:
        raise InvalidPackageError(aip_id, "not an event record of this package")
    return _read_event(events[0], aip_id)
