"""Hostile PDFs for the API tests: decompression bombs in content streams."""

from __future__ import annotations

import zlib

from tests.support import pdfs


def _one_page(packed_contents: bytes) -> bytes:
    """A one-page PDF whose content stream is ``packed_contents`` (Flate-compressed)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>",
        f"<< /Length {len(packed_contents)} /Filter /FlateDecode >>".encode()
        + b"\nstream\n"
        + packed_contents
        + b"\nendstream",
    ]
    return pdfs._assemble(objects)


def content_bomb(decompressed_mb: int = 60) -> bytes:
    """A one-page PDF whose content stream inflates to ``decompressed_mb`` MB of text ops."""
    unit = b"BT (a) Tj ET\n"
    body = unit * (decompressed_mb * 1024 * 1024 // len(unit))
    packed = zlib.compress(body, 9)
    return _one_page(packed)


def zeros_bomb(decompressed_mb: int = 500) -> bytes:
    """A content stream of zeros: tiny compressed, enormous inflated."""
    comp = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    packed = b"".join(comp.compress(chunk) for _ in range(decompressed_mb)) + comp.flush()
    return _one_page(packed)
