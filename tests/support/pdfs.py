"""Real PDFs for tests, written byte by byte (no PDF library), plus hostile variants.

The generated files are plain PDF 1.7 with a Helvetica text layer in WinAnsiEncoding, so
Dutch text with diacritics (é, ë) survives text extraction.
"""

from __future__ import annotations

import io
import re
import zlib
from pathlib import Path


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def make_pdf(
    lines: list[str] | None = None,
    *,
    pages: int = 1,
    extra_catalog: bytes = b"",
    extra_objects: list[bytes] | None = None,
    compress: bool = True,
    padding_bytes: int = 0,
) -> bytes:
    """A valid PDF with ``lines`` of text on each of ``pages`` pages.

    ``extra_catalog`` is spliced into the catalog dictionary and ``extra_objects`` are
    appended as objects numbered after the fixed ones (used for hostile variants).
    ``padding_bytes`` adds an incompressible stream object to make large files.
    """
    lines = lines or ["Attest", "Dit is een attest van de Vlaamse overheid."]
    objects: list[bytes] = []
    # 1 catalog, 2 pages, 3 font, then per page: page object + content stream.
    first_page = 4
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R " + extra_catalog + b">>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for i in range(pages):
        content = io.BytesIO()
        content.write(b"BT /F1 12 Tf 14 TL 72 770 Td\n")
        for line in lines:
            content.write(b"(" + _escape(line) + b") Tj T*\n")
        content.write(f"(Pagina {i + 1}) Tj\nET\n".encode())
        body = content.getvalue()
        if compress:
            body = zlib.compress(body)
            stream_dict = f"<< /Length {len(body)} /Filter /FlateDecode >>".encode()
        else:
            stream_dict = f"<< /Length {len(body)} >>".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {first_page + 2 * i + 1} 0 R >>".encode()
        )
        objects.append(stream_dict + b"\nstream\n" + body + b"\nendstream")
    for extra in extra_objects or []:
        objects.append(extra)
    if padding_bytes:
        noise = _noise(padding_bytes)
        objects.append(
            f"<< /Length {len(noise)} >>".encode() + b"\nstream\n" + noise + b"\nendstream"
        )
    return _assemble(objects)


def _noise(n: int) -> bytes:
    # Deterministic, incompressible filler without importing random.
    out = bytearray()
    state = 0x9E3779B97F4A7C15
    while len(out) < n:
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out += state.to_bytes(8, "little")
    return bytes(out[:n])


def _assemble(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def javascript_pdf() -> bytes:
    """A PDF that runs JavaScript when opened (OpenAction)."""
    # Objects 1-5 are fixed for one page; the action is object 6.
    return make_pdf(
        extra_catalog=b"/OpenAction 6 0 R ",
        extra_objects=[b"<< /Type /Action /S /JavaScript /JS (app.alert\\('hi'\\);) >>"],
    )


def encrypted_pdf() -> bytes:
    """A password-protected PDF (RC4/AES via pypdf)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf())))
    writer.encrypt(user_password="geheim", owner_password="geheim", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated_pdf() -> bytes:
    data = make_pdf(pages=2)
    return data[: len(data) // 2]


def not_a_pdf() -> bytes:
    return b"PK\x03\x04 this is a zip file, not a PDF" + b"\x00" * 64


def write_large_pdf(path: Path, size: int, *, chunk: int = 8 * 2**20) -> None:
    """Write a valid one-page PDF of about ``size`` bytes to ``path`` without holding it in
    memory: the page of :func:`make_pdf` plus one unreferenced stream of filler, written in
    ``chunk``-sized pieces (for bounded-memory tests and benchmarks)."""
    head = make_pdf()
    # Reuse make_pdf's objects; rewrite only the tail (xref/trailer) to add the big stream.
    body = head[: head.index(b"\nxref\n") + 1]
    offsets = [int(m) for m in re.findall(rb"(\d{10}) 00000 n", head)]
    block = _noise(min(chunk, max(size, 1)))
    with path.open("wb") as out:
        out.write(body)
        offsets.append(out.tell())
        number = len(offsets)
        out.write(f"{number} 0 obj\n<< /Length {size} >>\nstream\n".encode())
        left = size
        while left > 0:
            out.write(block[: min(left, len(block))])
            left -= len(block)
        out.write(b"\nendstream\nendobj\n")
        xref = out.tell()
        out.write(f"xref\n0 {number + 1}\n0000000000 65535 f \n".encode())
        for offset in offsets:
            out.write(f"{offset:010d} 00000 n \n".encode())
        out.write(
            f"trailer\n<< /Size {number + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
        )
