"""Typed access to XML text for the metadata writers and readers (private).

Datetimes are written as UTC ISO 8601 with a ``Z`` suffix and microseconds only when
non-zero, so the same instant always serialises to the same text (deterministic packages).
Naive datetimes are refused: an archive cannot know which wall clock they came from.
Lookups that fail raise :class:`InvalidPackageError` naming the missing element.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache

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
    found = _first(parent, tag)
    if found is None:
        raise InvalidPackageError(aip_id, f"missing element {_local(tag)} in {_local(parent.tag)}")
    return found


def _first(parent: etree._Element, tag: str) -> etree._Element | None:
    """``parent.find(tag)`` for a plain (namespaced) tag, without lxml's Python-level
    ElementPath: every metadata read calls this dozens of times."""
    if _is_plain(tag):
        return next(parent.iterchildren(tag), None)
    return parent.find(tag)  # a path or a pattern: ElementPath's job


@lru_cache(maxsize=1024)
def _is_plain(tag: str) -> bool:
    """``{namespace}name`` or ``name``: no path step, predicate or wildcard."""
    local = tag[tag.find("}") + 1 :] if tag.startswith("{") else tag
    return bool(local) and local not in (".", "..") and not any(c in local for c in "/[*{}")


def text(parent: etree._Element, tag: str, *, aip_id: str) -> str:
    """The text of the first child ``tag`` ('' when empty).

    Raises:
        InvalidPackageError: there is no such child.
    """
    return child(parent, tag, aip_id=aip_id).text or ""


def optional_text(parent: etree._Element, tag: str) -> str | None:
    found = _first(parent, tag)
    return None if found is None else (found.text or "")


class Children:
    """The first child element of each tag, found in one pass over ``parent``: cheaper than a
    ``find`` per tag (lxml runs ``find`` through Python-level ElementPath)."""

    __slots__ = ("_first", "_parent", "_aip_id")

    def __init__(self, parent: etree._Element, *, aip_id: str) -> None:
        first: dict[object, etree._Element] = {}
        for element in parent:
            first.setdefault(element.tag, element)
        self._first = first
        self._parent = parent
        self._aip_id = aip_id

    def get(self, tag: str) -> etree._Element | None:
        return self._first.get(tag)

    def child(self, tag: str) -> etree._Element:
        """As :func:`child`.

        Raises:
            InvalidPackageError: there is none.
        """
        found = self._first.get(tag)
        if found is None:
            raise InvalidPackageError(
                self._aip_id, f"missing element {_local(tag)} in {_local(self._parent.tag)}"
            )
        return found

    def text(self, tag: str) -> str:
        """As :func:`text`.

        Raises:
            InvalidPackageError: there is no such child.
        """
        return self.child(tag).text or ""

    def optional_text(self, tag: str) -> str | None:
        found = self._first.get(tag)
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
