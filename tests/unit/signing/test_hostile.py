"""Hostile and odd input: documents signed by someone else, PDF/A, broken cross-reference
tables, very large files. Clear errors or correct results; never a crash, never a
half-written result (``sign`` returns bytes or raises; ``sign_stream`` empties its output on
failure, see test_streaming.py). PDF/A: no PDF/A validator installs here (veraPDF and the
others are not on PyPI, npm or Debian), so conformance is checked structurally."""

from __future__ import annotations

import contextlib
import io
import re
import tracemalloc
from datetime import datetime
from xml.etree import ElementTree

import pytest
from pyhanko.pdf_utils.generic import IndirectObject, parse_pdf_date
from pyhanko.pdf_utils.reader import PdfFileReader

from signing._archival import ArchivalWriter
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
    """A PDF/A-2b shaped document: XMP with pdfaid, an sRGB output intent, /ID, and an
    embedded TrueType font next to the base-14 one. The font program is placeholder bytes:
    what is checked is that signing leaves font resources and their embedding untouched."""
    objects = [
        b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(_XMP)
        + _XMP
        + b"\nendstream",
        b"<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sRGB) "
        b"/DestOutputProfile 8 0 R >>",
        b"<< /N 3 /Length 4 >>\nstream\nICC!\nendstream",
        b"<< /Type /Font /Subtype /TrueType /BaseFont /AAAAAA+Kluis /FirstChar 32 "
        b"/LastChar 32 /Widths [500] /FontDescriptor 10 0 R >>",
        b"<< /Type /FontDescriptor /FontName /AAAAAA+Kluis /Flags 32 /FontBBox [0 0 500 700] "
        b"/ItalicAngle 0 /Ascent 700 /Descent 0 /CapHeight 700 /StemV 80 /FontFile2 11 0 R >>",
        b"<< /Length 8 /Length1 8 >>\nstream\n\x00\x01\x00\x00\x00\x00\x00\x00\nendstream",
        b"<< /Producer (Agency DMS) /Title (Besluit 42) >>",
    ]
    pdf = make_pdf(extra_catalog=b"/Metadata 6 0 R /OutputIntents [7 0 R] ", extra_objects=objects)
    pdf = pdf.replace(b"/Font << /F1 3 0 R >>", b"/Font << /F1 3 0 R /F2 9 0 R >>")
    return _reindex(pdf.replace(b"/Root 1 0 R", b"/Root 1 0 R /Info 12 0 R"))


def _reindex(pdf: bytes) -> bytes:
    """Recompute the xref offsets and startxref of a make_pdf() document after an edit."""
    body = pdf[: pdf.index(b"\nxref\n") + 1]
    offsets = [m.start() for m in re.finditer(rb"(?m)^\d+ 0 obj\n", body)]
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    xref += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = pdf[pdf.index(b"trailer") : pdf.index(b"startxref")]
    return body + xref + trailer + b"startxref\n%d\n%%%%EOF\n" % len(body)


_FORBIDDEN_KEYS = {
    # PDF/A-2 (ISO 19005-2 6.1.3, 6.2.x, 6.5, 6.6, 6.8): encryption, actions that run or
    # launch, additional actions, embedded files, transparency we would have to declare.
    "/Encrypt", "/JS", "/JavaScript", "/AA", "/OpenAction", "/Launch", "/EmbeddedFiles",
    "/SMask", "/Group", "/FontFile", "/FontFile2", "/FontFile3",
}  # fmt: skip


def _keys(obj: object) -> set[str]:
    """All dictionary keys in ``obj`` and its direct sub-objects (streams by their dict)."""
    out: set[str] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.update(str(k) for k in item)
            stack.extend(v for v in item.values() if not isinstance(v, IndirectObject))
        elif isinstance(item, list):
            stack.extend(v for v in item if not isinstance(v, IndirectObject))
    return out


def _pdfa_facts(pdf: bytes) -> dict[str, object]:
    """What PDF/A conformance of a signed copy depends on, read from the newest revision."""
    reader = PdfFileReader(io.BytesIO(pdf))
    root = reader.root
    intents = []
    for ref in root["/OutputIntents"]:
        intent = ref.get_object()
        profile = intent["/DestOutputProfile"].get_object().data
        intents.append((intent["/S"], intent["/OutputConditionIdentifier"], profile))
    xmp = root["/Metadata"].get_object().data
    fonts = set()
    for page_ref in root["/Pages"]["/Kids"]:
        for name, font_ref in page_ref.get_object()["/Resources"]["/Font"].items():
            font = font_ref.get_object()
            descriptor = font.get("/FontDescriptor")
            embedded = descriptor is not None and any(
                key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3")
            )
            fonts.add((str(name), font_ref.idnum, str(font["/BaseFont"]), embedded))
    return {
        "header": pdf[:8],
        "encrypted": reader.encrypted,
        "intents": intents,
        "pdfaid": (
            re.search(rb"pdfaid:part(?:>|=\")(\d)", xmp).group(1),  # type: ignore[union-attr]
            re.search(rb"pdfaid:conformance(?:>|=\")([ABU])", xmp).group(1),  # type: ignore[union-attr]
        ),
        "fonts": fonts,
    }


def _assert_still_pdfa(original: bytes, signed: bytes) -> None:
    assert signed.startswith(original)  # nothing rewritten, only appended
    assert _pdfa_facts(signed) == _pdfa_facts(original)
    reader = PdfFileReader(io.BytesIO(signed))
    before = PdfFileReader(io.BytesIO(original)).xrefs.total_revisions
    for revision in range(before, reader.xrefs.total_revisions):
        for ref in reader.xrefs.explicit_refs_in_revision(revision):
            obj = reader.get_object(ref, revision=revision)
            assert not _keys(obj) & _FORBIDDEN_KEYS, (ref, _keys(obj) & _FORBIDDEN_KEYS)
            assert not isinstance(obj, dict) or obj.get("/Type") != "/Font"  # no new fonts
            if isinstance(obj, dict) and obj.get("/Subtype") == "/Widget":
                flags = int(obj["/F"])
                assert flags & 4 and not flags & (1 | 2 | 32)  # Print; not hidden/no-view
                # PDF/A-2 6.3.3: an annotation needs /AP unless its Rect has no area.
                assert "/AP" in obj or [float(x) for x in obj["/Rect"]] == [0, 0, 0, 0]
    assert "/ID" in reader.trailer and "/Encrypt" not in reader.trailer
    # The XMP packet stays well-formed and agrees with /Info where both say something.
    xmp = reader.root["/Metadata"].get_object().data
    tree = ElementTree.fromstring(xmp[xmp.index(b"<x:xmpmeta") : xmp.index(b"</x:xmpmeta>") + 12])
    assert b"Besluit 42" in xmp  # other XMP properties are kept
    if "/Info" in reader.trailer:  # ISO 19005-2 6.6.2.3: /Info and XMP must agree
        producer = reader.trailer["/Info"].get_object().get("/Producer")
        described = tree.find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
        assert described is not None
        assert producer is None or str(producer) == described.get(
            "{http://ns.adobe.com/pdf/1.3/}Producer"
        )


def test_pdfa_stays_conformant_after_sealing(
    pades_signer: PadesSigner, signing_pki: DevPki
) -> None:
    original = _pdfa()
    signed = pades_signer.sign(original).pdf
    _assert_still_pdfa(original, signed)
    assert validate(signed, trust_roots=signing_pki.trust_roots()).valid


def test_pdfa_stays_conformant_through_b_lta_upkeep(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource
) -> None:
    # Intake at B-T, then DSS + document time-stamp: three appended revisions in all.
    original = _pdfa()
    policy = SigningPolicy(level="B-T", tsa_url=cpki.tsa_url)
    with PadesSigner(policy, cpki_source) as signer:
        bt = signer.sign(original).pdf
    lta = augment(bt, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)
    _assert_still_pdfa(original, lta)
    report = validate(lta, trust_roots=[cpki.root_der])
    assert report.valid and report.signatures[0].level == "B-LTA", report.to_dict()


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
    # The input buffer is borrowed and the output is built once (plus BytesIO's growth
    # slack); streaming large files is tests/unit/signing/test_streaming.py.
    assert peak < 1.5 * size, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"
    del original
    assert validate(signed.pdf, trust_roots=signing_pki.trust_roots()).valid


def test_pdfa_info_and_xmp_carry_the_signing_time(pades_signer: PadesSigner) -> None:
    # pyHanko reads the clock once for /Info and once for XMP; we pin both to the seal time.
    original = _reindex(_pdfa().replace(b"/Producer (Agency DMS)", b"/ModDate (D:20200101000000Z)"))
    signed = pades_signer.sign(original)
    reader = PdfFileReader(io.BytesIO(signed.pdf))
    info = reader.trailer["/Info"].get_object()
    xmp = reader.root["/Metadata"].get_object().data
    (modify,) = re.findall(rb'xmp:ModifyDate(?:>|=")([^<"]+)', xmp)
    assert datetime.fromisoformat(modify.decode()) == signed.signed_at
    assert parse_pdf_date(str(info["/ModDate"])) == signed.signed_at


def test_archival_writer_and_upkeep_refuse_a_naive_clock(signed_bt: bytes) -> None:
    # A naive time would be written as local time in /Info but as-is in XMP.
    with pytest.raises(ValueError, match="timezone-aware"):
        ArchivalWriter(io.BytesIO(signed_bt), modified_at=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        augment(signed_bt, trust_roots=[], level="B-LT", clock=lambda: datetime(2030, 1, 1))
