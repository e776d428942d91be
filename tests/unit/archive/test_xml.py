"""The hardened parser refuses DTDs, entities, foreign encodings and oversize input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
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
@pytest.mark.parametrize("keep_blank_text", [True, False])
def test_hostile_samples_are_rejected(name: str, keep_blank_text: bool) -> None:
    with pytest.raises(HostileXmlError):
        parse_xml((HOSTILE / name).read_bytes(), keep_blank_text=keep_blank_text)


def test_doctype_without_entities_is_rejected() -> None:
    with pytest.raises(HostileXmlError, match="DOCTYPE"):
        parse_xml(b"<!DOCTYPE a><a/>")


def test_lowercase_markers_and_bom_do_not_hide_a_doctype() -> None:
    with pytest.raises(HostileXmlError):
        parse_xml(b"\xef\xbb\xbf<?xml version='1.0'?><!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_wide_encodings_without_a_bom_are_rejected(codec: str) -> None:
    # libxml2 detects these from "<\0?\0" alone; there "<!" never occurs as bytes, so the
    # byte-level DOCTYPE scan must not be the only guard.
    doc = "<?xml version='1.0'?><!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>".encode(codec)
    with pytest.raises(HostileXmlError, match="UTF-8"):
        parse_xml(doc)


def test_a_nul_byte_is_rejected() -> None:
    with pytest.raises(HostileXmlError, match="UTF-8"):
        parse_xml(b"<a>\x00</a>")


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


def test_predefined_entities_and_character_references_are_text() -> None:
    root = parse_xml(b"<a b='&quot;&#233;'>&lt;&#x41;&amp;&apos;&gt;</a>")
    assert root.get("b") == '"\u00e9'
    assert root.text == "<A&'>"


def test_a_reference_next_to_predefined_ones_is_still_rejected() -> None:
    with pytest.raises(HostileXmlError):
        parse_xml(b"<a>&amp;&#65;&ampx;</a>")


def test_each_thread_parses_with_its_own_parser() -> None:
    # parse_xml reuses one parser per thread; lxml parsers must never be shared between
    # threads, so many threads at once must still each get exactly their own document.
    def parse(n: int) -> list[str]:
        return [
            parse_xml(f"<doc n='{n}'><i>{i}</i></doc>".encode()).get("n") or "" for i in range(200)
        ]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(parse, range(32)))
    assert results == [[str(n)] * 200 for n in range(32)]


def test_an_attributes_only_parse_drops_blank_text_and_keeps_the_rest() -> None:
    data = b'<a x="1">\n  <b y="2">  </b>\n  <c>t</c>\n</a>'
    kept, dropped = parse_xml(data), parse_xml(data, keep_blank_text=False)
    assert kept.text == "\n  " and dropped.text is None  # the blanks between elements
    assert [(e.tag, dict(e.attrib), e.text) for e in dropped.iter()] == [
        ("a", {"x": "1"}, None),
        ("b", {"y": "2"}, "  "),  # an element's only text is no blank between elements
        ("c", {}, "t"),
    ]
    assert parse_xml(data).text == "\n  "  # this thread's other parser is unchanged


def test_plain_utf8_xml_parses() -> None:
    root = parse_xml("<?xml version='1.0' encoding='utf-8'?><a b='é'>ë &amp; ok</a>".encode())
    assert root.get("b") == "é"
    assert root.text == "ë & ok"


def test_schema_validation_reports_errors() -> None:
    bad = parse_xml(b'<mets:mets xmlns:mets="http://www.loc.gov/METS/"><mets:nope/></mets:mets>')
    assert validate(bad)
