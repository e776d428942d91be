"""Typed access to XML text for the metadata writers and readers (private).

Datetimes are written as UTC ISO 8601 with a ``Z`` suffix and microseconds only when
non-zero, so the same instant always serialises to the same text (deterministic packages).
Naive datetimes are refused: an archive cannot know which wall clock they came from.
Lookups that fail raise :class:`InvalidPackageError` naming the missing element.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from lxml import etree

from archive.errors import InvalidPackageError


def format_datetime(value: datetime) -> str:
    """UTC ISO 8601 text for an aware datetime.

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: archive times must be timezone-aware")
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def parse_datetime(text: str, *, aip_id: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidPackageError(aip_id, f"{what}: {text!r} is not a datetime") from exc
    if value.tzinfo is None:
        raise InvalidPackageError(aip_id, f"{what}: {text!r} has no timezone")
    return value.astimezone(UTC)


def parse_date(text: str, *, aip_id: str, what: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidPackageError(aip_id, f"{what}: {text!r} is not a date") from exc


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    """Append a child element with optional text and attributes (attribute order as given)."""
    child = etree.SubElement(parent, tag, attrib)
    if text is not None:
        child.text = text
    return child


def child(parent: etree._Element, tag: str, *, aip_id: str) -> etree._Element:
    """The first child ``tag`` of ``parent``.

    Raises:
        InvalidPackageError: there is none.
    """
    found = parent.find(tag)
    if found is None:
        raise InvalidPackageError(aip_id, f"missing element {_local(tag)} in {_local(parent.tag)}")
    return found


def text(parent: etree._Element, tag: str, *, aip_id: str) -> str:
    """The text of the first child ``tag`` ('' when empty).

    Raises:
        InvalidPackageError: there is no such child.
    """
    return child(parent, tag, aip_id=aip_id).text or ""


def optional_text(parent: etree._Element, tag: str) -> str | None:
    found = parent.find(tag)
    return None if found is None else (found.text or "")


def attr(element: etree._Element, name: str, *, aip_id: str) -> str:
    """A required attribute.

    Raises:
        InvalidPackageError: it is absent.
    """
    value = element.get(name)
    if value is None:
        raise InvalidPackageError(
            aip_id, f"missing attribute {_local(name)} on {_local(element.tag)}"
        )
    return value


def serialise(root: etree._Element) -> bytes:
    """UTF-8 bytes with an XML declaration, pretty-printed; same tree -> same bytes."""
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _local(tag: object) -> str:
    name = str(tag)
    return name.rsplit("}", 1)[-1]
