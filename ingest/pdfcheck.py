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
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, PdfObject

from ingest.errors import FieldProblem, InvalidSubmissionError

_ACTIVE_ACTIONS = {"/JavaScript", "/Launch", "/ImportData", "/Rendition", "/SubmitForm"}
_MAX_VISITS = 200_000
_MAX_TEXT_CHARS = 2_000_000

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


def _extract_text(reader: PdfReader) -> str:
    parts: list[str] = []
    total = 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:
            log.warning("no text from page %d: %s", number, exc)
            continue
        parts.append(text)
        total += len(text)
        if total >= _MAX_TEXT_CHARS:
            break
    return "\n".join(parts)[:_MAX_TEXT_CHARS]
