"""Acceptance checks on a submitted PDF, and its text for the index.

A submitted PDF must parse, must not be encrypted, must stay under the size limit and
must not carry active content (JavaScript, launch actions): an archive hands these files
to citizens, so it must not hand out anything that runs. The object graph is walked
without decoding content streams, and the walk is bounded, so hostile files cannot make
the check itself expensive.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass

from pypdf import PageObject, PdfReader
from pypdf.errors import LimitReachedError, PyPdfError
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    PdfObject,
    StreamObject,
)

from ingest.errors import FieldProblem, InvalidSubmissionError

_ACTIVE_ACTIONS = {"/JavaScript", "/Launch", "/ImportData", "/Rendition", "/SubmitForm"}
_MAX_VISITS = 200_000
_MAX_TEXT_CHARS = 2_000_000
_MAX_CONTENT_BYTES = 1_000_000
"""Decoded content stream size above which a page is not read for text."""
_TEXT_SECONDS = 10.0
_BOMB_MIN_BYTES = 16_000_000
_BOMB_RATIO = 100

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PdfFacts:
    pages: int
    text: str
    """Extracted text, possibly empty (scans) and capped at 2 million characters."""


def _reject(message: str) -> InvalidSubmissionError:
    return InvalidSubmissionError([FieldProblem("file", message)])


def inspect_pdf(data: bytes, *, max_bytes: int) -> PdfFacts:
    """Check a submitted PDF and extract its text.

    Raises:
        InvalidSubmissionError: empty, too large, not a PDF, unreadable, encrypted, or
            carrying active content.
    """
    if not data:
        raise _reject("the file is empty")
    if len(data) > max_bytes:
        raise _reject(f"the file is {len(data)} bytes; the limit is {max_bytes} bytes")
    if not data[:1024].lstrip().startswith(b"%PDF-"):
        raise _reject("the file is not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise _reject("the PDF is encrypted; submit it without a password or encryption")
        pages = len(reader.pages)
        if pages == 0:
            raise _reject("the PDF has no pages")
        _refuse_active_content(reader)
    except InvalidSubmissionError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise _reject(f"the PDF cannot be read: {exc}") from exc
    return PdfFacts(pages=pages, text=_extract_text(reader))


def _refuse_active_content(reader: PdfReader) -> None:
    seen: set[tuple[int, int]] = set()
    stack: list[PdfObject | None] = [reader.trailer]
    visits = 0
    while stack:
        visits += 1
        if visits > _MAX_VISITS:
            raise _reject("the PDF has too many objects to check")
        obj = stack.pop()
        if isinstance(obj, IndirectObject):
            ref = (obj.idnum, obj.generation)
            if ref in seen:
                continue
            seen.add(ref)
            obj = obj.get_object()
        if isinstance(obj, DictionaryObject):
            if "/JS" in obj or obj.get("/S") in _ACTIVE_ACTIONS:
                raise _reject("the PDF contains JavaScript or other active content")
            names = obj.get("/Names")
            if isinstance(names, DictionaryObject) and "/JavaScript" in names:
                raise _reject("the PDF contains JavaScript or other active content")
            for key, value in obj.items():
                if key not in ("/Parent", "/P"):
                    stack.append(value)
        elif isinstance(obj, ArrayObject):
            stack.extend(obj)
        elif isinstance(obj, NameObject):
            continue


def _decoded_size(stream: PdfObject) -> tuple[int, int]:
    """(decoded, encoded) sizes of a stream; rejects streams that inflate beyond limits."""
    obj = stream.get_object() if isinstance(stream, IndirectObject) else stream
    if not isinstance(obj, StreamObject):
        return 0, 0
    encoded = len(obj._data)
    try:
        decoded = len(obj.get_data())
    except LimitReachedError as exc:
        raise _reject("a stream of the PDF inflates beyond limits (decompression bomb)") from exc
    if decoded > _BOMB_MIN_BYTES and decoded > _BOMB_RATIO * max(encoded, 1):
        raise _reject("a stream of the PDF inflates beyond limits (decompression bomb)")
    return decoded, encoded


def _content_size(page: PageObject) -> int:
    """Decoded size of what text extraction would interpret: contents and form XObjects."""
    total = 0
    contents = page.get("/Contents")
    streams: list[PdfObject] = []
    if contents is not None:
        resolved = contents.get_object()
        streams.extend(resolved if isinstance(resolved, ArrayObject) else [contents])
    resources = page.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    if isinstance(resources, DictionaryObject):
        xobjects = resources.get("/XObject")
        xobjects = xobjects.get_object() if xobjects is not None else None
        if isinstance(xobjects, DictionaryObject):
            for value in list(xobjects.values())[:1000]:
                target = value.get_object()
                if isinstance(target, StreamObject) and target.get("/Subtype") == "/Form":
                    streams.append(target)
    for stream in streams[:1000]:
        total += _decoded_size(stream)[0]
    return total


def _extract_text(reader: PdfReader) -> str:
    # Text extraction interprets content streams in pure Python (seconds per MB), and a
    # few KB of Flate can inflate to many MB: pages with oversized content streams are not
    # read for text, and extraction stops at a time budget. pypdf itself caps inflation.
    parts: list[str] = []
    total = 0
    deadline = time.monotonic() + _TEXT_SECONDS
    for number, page in enumerate(reader.pages, start=1):
        if time.monotonic() > deadline:
            log.warning("text extraction stopped at page %d: time budget spent", number)
            break
        try:
            size = _content_size(page)
            if size > _MAX_CONTENT_BYTES:
                log.warning("no text from page %d: content stream of %d bytes", number, size)
                continue
            text = page.extract_text() or ""
        except InvalidSubmissionError:
            raise
        except Exception as exc:
            log.warning("no text from page %d: %s", number, exc)
            continue
        parts.append(text)
        total += len(text)
        if total >= _MAX_TEXT_CHARS:
            break
    return "\n".join(parts)[:_MAX_TEXT_CHARS]
