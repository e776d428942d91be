"""A lean ``multipart/form-data`` reader for ``POST /v1/documents``: parts straight into bytes.

Starlette's ``request.form()`` spools every file part into a ``SpooledTemporaryFile`` behind
an ``UploadFile`` and FastAPI then validates the form field by field; per deposit that was
a large share of the API worker's own CPU. This reader feeds the request stream to the same
parser Starlette uses (python-multipart's ``MultipartParser``), so hostile input meets the
same state machine, and keeps Starlette's limits and answers: at most 1000 file parts and
1000 fields, a field part of at most 1 MiB, ``400`` with Starlette's detail for malformed
input. File parts are bounded by ``file_limit`` (one byte more is kept, so the caller can
tell "too large"); the whole body is bounded by the edge middleware before any of this.

Like Starlette's ``FormData.get``, a name sent twice keeps its last part.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import Request

from kluis.errors import UnsupportedMediaTypeError

if TYPE_CHECKING:  # a typing-only name in python-multipart
    from python_multipart.multipart import MultipartCallbacks

MAX_FILES = 1000
MAX_FIELDS = 1000
MAX_FIELD_BYTES = 1024 * 1024


@dataclass
class Part:
    """One part of the form: a field (``filename`` is None) or a file."""

    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)
    charset: str = "utf-8"

    def text(self) -> str:
        """The content as Starlette decodes a form field (the form's charset, else Latin-1)."""
        return _decode(self.data, self.charset)


class _FormError(Exception):
    """Malformed or over-limit input; answered as Starlette answers it (400, its message)."""


def _decode(raw: bytes | bytearray, charset: str) -> str:
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return raw.decode("latin-1")


class _Collector:
    """The parser's callbacks: builds :class:`Part` objects, enforcing the limits."""

    def __init__(self, charset: str, file_limit: int) -> None:
        self.charset = charset
        self.file_limit = file_limit + 1
        self.parts: dict[str, Part] = {}
        self.files = 0
        self.fields = 0
        self.part = Part()
        self.header_name = b""
        self.header_value = b""
        self.disposition = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.part = Part(charset=self.charset)
        self.disposition = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        buffer = self.part.data
        if self.part.filename is None:
            if len(buffer) + end - start > MAX_FIELD_BYTES:
                raise _FormError(f"Part exceeded maximum size of {MAX_FIELD_BYTES // 1024}KB.")
            buffer += data[start:end]
        elif len(buffer) < self.file_limit:
            # Past the limit the rest is dropped, not kept: the caller rejects it anyway.
            buffer += data[start : min(end, start + self.file_limit - len(buffer))]

    def on_part_end(self) -> None:
        self.parts[self.part.name] = self.part

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        name = self.header_name.lower()
        if name == b"content-disposition":
            self.disposition = self.header_value
        elif name == b"content-type":
            self.part.content_type = _decode(self.header_value, "latin-1")
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        try:
            self.part.name = _decode(options[b"name"], self.charset)
        except KeyError:
            raise _FormError(
                'The Content-Disposition header field "name" must be provided.'
            ) from None
        if b"filename" in options:
            self.files += 1
            if self.files > MAX_FILES:
                raise _FormError(f"Too many files. Maximum number of files is {MAX_FILES}.")
            self.part.filename = _decode(options[b"filename"], self.charset)
        else:
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise _FormError(f"Too many fields. Maximum number of fields is {MAX_FIELDS}.")


async def read_form(request: Request, *, file_limit: int) -> dict[str, Part]:
    """The parts of a ``multipart/form-data`` request by name.

    Raises: UnsupportedMediaTypeError for any other content type; HTTPException (400) for
    malformed input or a limit exceeded; whatever the request stream raises (the edge
    middleware's PayloadTooLargeError).
    """
    media_type, params = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data":
        raise UnsupportedMediaTypeError("send multipart/form-data with a file and a metadata part")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    try:
        charset = codecs.lookup(charset).name
    except LookupError:
        charset = "latin-1"
    try:
        boundary = params[b"boundary"]
    except KeyError:
        raise HTTPException(400, "Missing boundary in multipart.") from None
    collector = _Collector(charset, file_limit)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except _FormError as exc:
        raise HTTPException(400, str(exc)) from None
    except FormParserError:
        raise HTTPException(400, "Invalid multipart data.") from None
    return collector.parts
