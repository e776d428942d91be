"""The hardened parser refuses DTDs, entities, foreign encodings and oversize input."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive.errors import HostileXmlError
from archive.xml import parse_xml, validate

HOSTILE = Path(__file__).parents[2] / "data" / "xml"


@pytest.mark.parametrize(
    "name",
    [
        "billion_laughs.xml",
        "external_entity.xml",
        "external_dtd.xml",
        "parameter_entity.xml",
        "utf16_doctype.xml",
    ],
)
def test_hostile_samples_are_rejected(name: str) -> None:
    with pytest.raises(HostileXmlError):
        parse_xml((HOSTILE / name).read_bytes())


def test_doctype_without_entities_is_rejected() -> None:
    with pytest.raises(HostileXmlError, match="DOCTYPE"):
        parse_xml(b"<!DOCTYPE a><a/>")


def test_lowercase_markers_and_bom_do_not_hide_a_doctype() -> None:
    with pytest.raises(HostileXmlError):
        parse_xml(b"\xef\xbb\xbf<?xml version='1.0'?><!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>")


def test_declared_foreign_encoding_is_rejected() -> None:
    with pytest.raises(HostileXmlError, match="encoding"):
        parse_xml(b"<?xml version='1.0' encoding='ISO-8859-1'?><a/>")


def test_malformed_and_oversize_input_is_rejected() -> None:
    with pytest.raises(HostileXmlError, match="well-formed"):
        parse_xml(b"<a><b></a>")
    with pytest.raises(HostileXmlError, match="limit"):
        parse_xml(b"<a>" + b"x" * 100 + b"</a>", max_bytes=50)


def test_undeclared_entity_reference_is_rejected() -> None:
    with pytest.raises(HostileXmlError):
        parse_xml(b"<a>&undefined;</a>")


def test_plain_utf8_xml_parses() -> None:
    root = parse_xml("<?xml version='1.0' encoding='utf-8'?><a b='é'>ë &amp; ok</a>".encode())
    assert root.get("b") == "é"
    assert root.text == "ë & ok"


def test_schema_validation_reports_errors() -> None:
    bad = parse_xml(b'<mets:mets xmlns:mets="http://www.loc.gov/METS/"><mets:nope/></mets:mets>')
    assert validate(bad)
