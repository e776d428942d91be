"""Hostile and odd input: documents signed by someone else, PDF/A, broken cross-reference
tables, very large files. Clear errors or correct results; never a crash, never a
half-written result (signing returns bytes or raises, it writes no files)."""

from __future__ import annotations

import contextlib
import io
import re
import tracemalloc

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.devpki import DevPki
from signing.errors import SigningError, UnreadablePdfError
from signing.keys import Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.upkeep import augment
from signing.validation import validate
from tests.support.pdfs import make_pdf
from tests.support.pki import CertomancerPki

_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" '
    b'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">'
    b"<pdfaid:part>2</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance>"
    b'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Besluit 42</rdf:li></rdf:Alt></dc:title>'
    b"<pdf:Producer>Agency DMS</pdf:Producer>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def _pdfa() -> bytes:
    """A PDF/A-2b shaped document: XMP with pdfaid, an sRGB output intent, /Info and /ID."""
    objects = [
        b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(_XMP)
        + _XMP
        + b"\nendstream",
        b"<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sRGB) "
        b"/DestOutputProfile 8 0 R >>",
        b"<< /N 3 /Length 4 >>\nstream\nICC!\nendstream",
    ]
    return make_pdf(extra_catalog=b"/Metadata 6 0 R /OutputIntents [7 0 R] ", extra_objects=objects)


def test_pdfa_markers_survive_sealing(pades_signer: PadesSigner, signing_pki: DevPki) -> None:
    original = _pdfa()
    signed = pades_signer.sign(original).pdf
    assert signed.startswith(original)  # nothing rewritten, only appended
    update = signed[len(original) :]
    # No PDF/A-forbidden constructs in what we append.
    for forbidden in (b"/JavaScript", b"/JS ", b"/Encrypt", b"/Launch", b"/EmbeddedFiles"):
        assert forbidden not in update
    reader = PdfFileReader(io.BytesIO(signed))
    root = reader.root
    assert root["/OutputIntents"][0].get_object()["/S"] == "/GTS_PDFA1"
    xmp = root["/Metadata"].get_object().data
    assert re.search(rb"pdfaid:part(>|=\")2", xmp) and re.search(rb"conformance(>|=\")B", xmp)
    assert b"Besluit 42" in xmp  # other XMP properties are kept
    assert b"/ID" in update.split(b"trailer")[-1]
    # The signature widget is invisible (zero-size) and printable, as PDF/A requires.
    (widget,) = [a.get_object() for a in reader.root["/AcroForm"]["/Fields"]]
    assert [float(x) for x in widget["/Rect"]] == [0, 0, 0, 0]
    assert int(widget["/F"]) & 4  # Print flag
    assert validate(signed, trust_roots=signing_pki.trust_roots()).valid


def test_document_signed_by_another_pki_keeps_its_signature(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource, signing_pki: DevPki, signed_bt: bytes
) -> None:
    # An agency's own B-LTA seal (certomancer PKI), then our seal on top.
    theirs = augment(signed_bt, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)
    with PadesSigner(SigningPolicy(), signing_pki.key_source()) as ours:
        both = ours.sign(theirs).pdf
    assert both.startswith(theirs)
    report = validate(both, trust_roots=[cpki.root_der, *signing_pki.trust_roots()])
    assert report.valid, report.to_dict()
    first, second = report.signatures
    assert first.intact and first.level == "B-LTA" and first.coverage == "entire-revision"
    assert second.level == "B-B" and second.field_name == "KluisSeal-2"


def _break_xref(pdf: bytes) -> bytes:
    """Shift every xref offset by 7 bytes: the table points into the middle of objects."""

    def shift(m: re.Match[bytes]) -> bytes:
        return b"%010d 00000 n" % (int(m.group(1)) + 7)

    return re.sub(rb"(\d{10}) 00000 n", shift, pdf)


def _bad_startxref(pdf: bytes) -> bytes:
    return re.sub(rb"startxref\n\d+", b"startxref\n999999", pdf)


@pytest.mark.parametrize("damage", [_break_xref, _bad_startxref], ids=["offsets", "startxref"])
def test_broken_xref_is_refused_or_signed_correctly(
    pades_signer: PadesSigner, signing_pki: DevPki, damage: object
) -> None:
    broken = damage(make_pdf(["Kapotte xref"]))  # type: ignore[operator]
    try:
        signed = pades_signer.sign(broken)
    except UnreadablePdfError as exc:
        assert exc.reason
        return
    assert signed.pdf.startswith(broken)
    report = validate(signed.pdf, trust_roots=signing_pki.trust_roots())
    assert report.valid, report.to_dict()


@pytest.mark.parametrize("damage", [_break_xref, _bad_startxref], ids=["offsets", "startxref"])
def test_broken_xref_in_signed_input_never_crashes_upkeep_or_validation(
    cpki: CertomancerPki, signed_bt: bytes, damage: object
) -> None:
    broken = damage(signed_bt)  # type: ignore[operator]
    for action in (
        lambda: validate(broken, trust_roots=[cpki.root_der]),
        lambda: augment(broken, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url),
    ):
        with contextlib.suppress(SigningError):  # a clean error is fine; a crash is not
            action()


def test_very_large_file_is_signed_with_bounded_memory(
    pades_signer: PadesSigner, signing_pki: DevPki
) -> None:
    size = 64 * 1024 * 1024
    original = make_pdf(padding_bytes=size)
    pades_signer.sign(make_pdf())  # warm-up: measures the CMS reservation
    tracemalloc.start()
    try:
        signed = pades_signer.sign(original)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert signed.pdf.startswith(original)
    # Input is borrowed, output is built once: about 2-3 copies, never proportional to
    # anything worse than the file size.
    assert peak < 3.5 * size, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"
    del original
    assert validate(signed.pdf, trust_roots=signing_pki.trust_roots()).valid
