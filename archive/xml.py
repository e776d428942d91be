"""The one hardened XML parser of the archive, plus loading of the shipped XSDs.

Every XML document the archive reads (METS, PREMIS, descriptive metadata) goes through
:func:`parse_xml`. Invariants:

- no DTD is ever loaded or processed: a ``<!DOCTYPE`` or ``<!ENTITY`` anywhere in the input is
  rejected *before* libxml2 sees it, and the parsed tree is checked again afterwards;
- entities are never expanded and the network is never touched;
- input must be UTF-8 (or its ASCII subset): other encodings could hide a DOCTYPE from the
  byte-level check, so they are refused;
- size is bounded (``max_bytes``) and libxml2's ``huge_tree`` safety limits stay on.

Any violation, and any input that is not well-formed, raises :class:`HostileXmlError`.
A fresh parser is built per call: lxml parsers are not safe to share between threads.

:func:`load_schema` builds an ``XMLSchema`` from ``archive/schemas/`` with a resolver that maps
every import to a local file by name and refuses anything else.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from threading import Lock
from typing import Any

from lxml import etree

from archive.errors import HostileXmlError

__all__ = ["DEFAULT_MAX_BYTES", "load_schema", "parse_xml", "schema_bytes", "validate"]

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
"""Metadata files are small; anything larger than this is refused."""

SCHEMA_FILES = ("DILCISExtensionMETS.xsd", "mets.xsd", "xlink.xsd")
"""The XSDs shipped in ``archive/schemas`` and copied into every package."""

_FORBIDDEN_MARKUP = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")
_XML_DECL = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_UTF8_NAMES = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}
# XMLSchema objects keep their error log on the instance, so validation is serialised.
_VALIDATION_LOCK = Lock()


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse ``data`` with DTDs, entities and network access all disabled.

    Raises:
        HostileXmlError: the input is too large, not UTF-8, declares a DOCTYPE or entities,
            or is not well-formed XML.
    """
    if len(data) > max_bytes:
        raise HostileXmlError(f"document of {len(data)} bytes exceeds the {max_bytes} limit")
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x4c\x6f\xa7\x94")):
        raise HostileXmlError("only UTF-8 encoded XML is accepted")
    body = data.removeprefix(b"\xef\xbb\xbf")
    declared = _XML_DECL.match(body)
    if declared and declared.group(1).lower() not in _UTF8_NAMES:
        raise HostileXmlError(f"encoding {declared.group(1).decode()!r} is not accepted")
    if b"<!" in body:  # every forbidden marker starts so: one scan for the common case
        for marker in _FORBIDDEN_MARKUP:
            if marker in body:
                raise HostileXmlError(f"{marker.decode()} declarations are not accepted")
    try:
        root = etree.fromstring(body, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise HostileXmlError(f"not well-formed: {exc}") from exc
    docinfo: Any = root.getroottree().docinfo  # lxml-stubs lack DocInfo.doctype
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise HostileXmlError("a document type declaration is present")
    if b"&" in body:  # an entity reference needs one: skip walking the tree without it
        for _ in root.iter(etree.Entity):
            raise HostileXmlError("an entity reference is present")
    return root


def schema_bytes(name: str) -> bytes:
    """The bytes of one shipped schema file (one of :data:`SCHEMA_FILES`).

    Raises:
        KeyError: ``name`` is not a shipped schema.
    """
    if name not in SCHEMA_FILES:
        raise KeyError(name)
    return resources.files("archive.schemas").joinpath(name).read_bytes()


class _LocalSchemaResolver(etree.Resolver):
    """Resolve every schema import to a shipped file by its last path segment, else refuse."""

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        name = (system_url or "").rstrip("/").rsplit("/", 1)[-1]
        if name in SCHEMA_FILES:
            return self.resolve_string(schema_bytes(name), context, base_url=name)
        raise HostileXmlError(f"schema reference {system_url!r} is not a shipped schema")


@cache
def load_schema(name: str = "mets.xsd") -> etree.XMLSchema:
    """An ``XMLSchema`` for one shipped XSD, imports resolved locally (never the network).

    The result is cached; use it through :func:`validate`, which serialises access.

    Raises:
        KeyError: ``name`` is not a shipped schema.
        HostileXmlError: the schema cannot be built (a shipped file is damaged).
    """
    parser = _parser()
    parser.resolvers.add(_LocalSchemaResolver())
    try:
        doc = etree.fromstring(schema_bytes(name), parser, base_url=name)
        return etree.XMLSchema(doc)
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as exc:
        raise HostileXmlError(f"shipped schema {name} cannot be loaded: {exc}") from exc


def validate(root: etree._Element, schema: str = "mets.xsd") -> tuple[str, ...]:
    """Validate a parsed document against a shipped XSD; return the error messages (empty = valid).

    Raises:
        KeyError, HostileXmlError: as :func:`load_schema`.
    """
    xsd = load_schema(schema)
    with _VALIDATION_LOCK:
        valid = xsd.validate(root)
        return () if valid else tuple(str(xsd.error_log).splitlines())
