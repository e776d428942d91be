"""The lean multipart reader of ``POST /v1/documents`` (kluis.api._multipart)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request

from kluis.api._multipart import MAX_FIELD_BYTES, MAX_FIELDS, Part, read_form
from kluis.errors import PayloadTooLargeError, UnsupportedMediaTypeError

PDF = b"%PDF-1.7\r\n--not-the-boundary\r\n\r\n\x00\xff binary\r\n%%EOF\r\n"


def _encoded(files: dict[str, Any], data: dict[str, str]) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def _read(
    body: bytes, content_type: str | None, *, chunk: int = 7, limit: int = 1 << 20
) -> dict[str, Part]:
    """read_form over ``body`` delivered in ``chunk``-byte ASGI messages (boundaries split)."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
        for i, p in enumerate(pieces)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    headers = [] if content_type is None else [(b"content-type", content_type.encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return asyncio.run(read_form(Request(scope, receive), file_limit=limit))


def test_parts_arrive_as_exact_bytes_and_text() -> None:
    body, ctype = _encoded({"file": ("a.pdf", PDF, "application/pdf")}, {"metadata": '{"t":"é"}'})
    for chunk in (1, 7, 4096):
        parts = _read(body, ctype, chunk=chunk)
        assert bytes(parts["file"].data) == PDF
        assert parts["file"].filename == "a.pdf"
        assert parts["file"].content_type == "application/pdf"
        assert parts["metadata"].filename is None
        assert parts["metadata"].text() == '{"t":"é"}'


def test_a_file_keeps_one_byte_past_the_limit_only() -> None:
    body, ctype = _encoded({"file": ("a.pdf", b"x" * 5000, "application/pdf")}, {})
    assert bytes(_read(body, ctype, chunk=333, limit=1000)["file"].data) == b"x" * 1001
    assert len(_read(body, ctype, limit=5000)["file"].data) == 5000


def test_a_name_sent_twice_keeps_the_last_part() -> None:
    b = "b"
    body = (
        f'--{b}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\nfirst\r\n'
        f'--{b}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\nsecond\r\n--{b}--\r\n'
    ).encode()
    assert _read(body, f"multipart/form-data; boundary={b}")["metadata"].text() == "second"


def test_the_form_charset_decodes_fields_and_bad_bytes_fall_back_to_latin1() -> None:
    body = '--b\r\nContent-Disposition: form-data; name="m"\r\n\r\né\r\n--b--\r\n'
    parts = _read(body.encode("latin-1"), "multipart/form-data; charset=latin-1; boundary=b")
    assert parts["m"].text() == "é"
    assert _read(body.encode("latin-1"), "multipart/form-data; boundary=b")["m"].text() == "é"


@pytest.mark.parametrize("ctype", [None, "application/json", "application/x-www-form-urlencoded"])
def test_anything_but_multipart_is_415(ctype: str | None) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        _read(b"{}", ctype)


def _fields(n: int) -> bytes:
    one = '--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n'
    return (one * n + "--b--\r\n").encode()


@pytest.mark.parametrize(
    ("body", "ctype", "detail"),
    [
        (b"--b--\r\n", "multipart/form-data", "Missing boundary in multipart."),
        (b"garbage without any boundary", "multipart/form-data; boundary=b", "Invalid multipart"),
        (
            b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            'field "name" must be provided',
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="m"\r\n\r\n'
            + b"x" * (MAX_FIELD_BYTES + 1)
            + b"\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            "Part exceeded maximum size",
        ),
        (_fields(MAX_FIELDS + 1), "multipart/form-data; boundary=b", "Too many fields"),
    ],
)
def test_malformed_or_over_limit_input_is_400(body: bytes, ctype: str, detail: str) -> None:
    with pytest.raises(HTTPException) as caught:
        _read(body, ctype, chunk=65536)
    assert caught.value.status_code == 400
    assert detail in caught.value.detail


def test_errors_of_the_request_stream_pass_through() -> None:
    async def receive() -> dict[str, Any]:
        raise PayloadTooLargeError("the request body exceeds 10 bytes")

    headers = [(b"content-type", b"multipart/form-data; boundary=b")]
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)
    with pytest.raises(PayloadTooLargeError):
        asyncio.run(read_form(request, file_limit=10))
