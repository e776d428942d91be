"""Independent check of our PAdES output with poppler's pdfsig (NSS), not pyHanko.

Needs ``pdfsig`` (poppler-utils) and ``certutil`` (libnss3-tools); the test fails rather
than skips when they are missing, because ``make test`` installs them.

Known poppler 22.12 limitation (seen while writing this test): in a document with several
signatures by our dev certificate, pdfsig reports "Certificate is Trusted." only for the
first one it checks and "Unknown issue with Certificate or corrupted data." for the others,
although every signature is "Valid" and pyHanko trusts all of them. The multi-signature
test therefore asserts integrity for all and trust for the first only.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
from pyhanko.pdf_utils.generic import parse_pdf_date
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.devpki import DevPki, ensure_dev_pki
from signing.keys import Pkcs11KeySource, Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.upkeep import augment, renew
from signing.validation import validate
from tests.support.pdfs import make_pdf, write_large_pdf
from tests.support.pki import PIN, SOFTHSM_MODULE, TOKEN_LABEL, CertomancerPki, running_pki

pytestmark = [pytest.mark.pdfsig, pytest.mark.integration]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (apt-get install poppler-utils libnss3-tools)")
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_dev_pki(tmp_path_factory.mktemp("pdfsig-pki") / "dev-pki")


@pytest.fixture(scope="module")
def nss_db(pki: DevPki, tmp_path_factory: pytest.TempPathFactory) -> str:
    certutil = _tool("certutil")
    directory = tmp_path_factory.mktemp("nssdb")
    db = f"sql:{directory}"
    subprocess.run([certutil, "-N", "--empty-password", "-d", db], check=True, capture_output=True)
    subprocess.run(
        [
            certutil,
            "-A",
            "-d",
            db,
            "-n",
            "kluis-dev-ca",
            "-t",
            "CT,C,C",
            "-i",
            str(pki.ca_cert_pem),
        ],
        check=True,
        capture_output=True,
    )
    return db


def _pdfsig(db: str, pdf: Path) -> str:
    result = subprocess.run(
        [_tool("pdfsig"), "-nssdir", db, str(pdf)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_pdfsig_accepts_our_seal(pki: DevPki, nss_db: str, tmp_path: Path) -> None:
    with PadesSigner(SigningPolicy(), pki.key_source()) as signer:
        signed = signer.sign(make_pdf(["Attest", "Gezegeld door Kluis."]))
    path = tmp_path / "signed.pdf"
    path.write_bytes(signed.pdf)

    out = _pdfsig(nss_db, path)
    assert "Signature Type: ETSI.CAdES.detached" in out, out
    assert "Total document signed" in out, out
    assert "Signature is Valid." in out, out
    assert "Certificate is Trusted." in out, out


def test_pdfsig_accepts_a_streamed_seal_of_a_large_pdf(
    pki: DevPki, nss_db: str, tmp_path: Path
) -> None:
    source, path = tmp_path / "large.pdf", tmp_path / "large-signed.pdf"
    write_large_pdf(source, 24 * 2**20)
    with (
        PadesSigner(SigningPolicy(), pki.key_source()) as signer,
        source.open("rb") as src,
        path.open("w+b") as out,
    ):
        signer.sign_stream(src, out)

    out_text = _pdfsig(nss_db, path)
    assert "Total document signed" in out_text, out_text
    assert "Signature is Valid." in out_text, out_text


def test_pdfsig_accepts_every_signature_of_a_resigned_pdf(
    pki: DevPki, nss_db: str, tmp_path: Path
) -> None:
    with PadesSigner(SigningPolicy(), pki.key_source()) as signer:
        twice = signer.sign(signer.sign(make_pdf()).pdf)
    path = tmp_path / "twice.pdf"
    path.write_bytes(twice.pdf)

    out = _pdfsig(nss_db, path)
    assert out.count("Signature is Valid.") == 2, out
    first = out.split("Signature #2:")[0]
    assert "Certificate is Trusted." in first, out


# -- every level, through the certomancer PKI (TSA, OCSP, CRL) and the HSM -----------------
# pdfsig checks the integrity of the regular signatures; for this PKI it reports the
# certificate status as "Unknown issue" (NSS revocation policy vs. the test responders,
# REPORT §3a), and poppler 22.12 does not verify document time-stamps at all, so trust and
# LTV are asserted by pyHanko in tests/unit/signing/test_levels.py instead.


@pytest.fixture(scope="module")
def cpki() -> CertomancerPki:
    return running_pki()


@pytest.fixture(scope="module")
def cpki_nss_db(cpki: CertomancerPki, tmp_path_factory: pytest.TempPathFactory) -> str:
    certutil = _tool("certutil")
    directory = tmp_path_factory.mktemp("nssdb-cpki")
    db = f"sql:{directory}"
    subprocess.run([certutil, "-N", "--empty-password", "-d", db], check=True, capture_output=True)
    for name, trust in (("root", "CT,C,C"), ("interm", ",,")):
        subprocess.run(
            [certutil, "-A", "-d", db, "-n", name, "-t", trust, "-i", str(cpki.cert_path(name))],
            check=True,
            capture_output=True,
        )
    return db


def _hsm_source(cpki: CertomancerPki) -> Pkcs11KeySource:
    os.environ["SOFTHSM2_CONF"] = str(cpki.softhsm_token().conf)
    return Pkcs11KeySource(SOFTHSM_MODULE, TOKEN_LABEL, "signer-ec256", PIN)


@pytest.mark.hsm
@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT", "B-LTA"])
def test_pdfsig_accepts_every_level(
    cpki: CertomancerPki, cpki_nss_db: str, tmp_path: Path, level: str
) -> None:
    policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
    with PadesSigner(policy, _hsm_source(cpki), trust_roots=[cpki.root_der]) as signer:
        signed = signer.sign(make_pdf(["Attest", level]))
    path = tmp_path / f"{level}.pdf"
    path.write_bytes(signed.pdf)

    out = _pdfsig(cpki_nss_db, path)
    assert "Signature Type: ETSI.CAdES.detached" in out, out
    assert out.count("Signature is Valid.") == 1, out


@pytest.mark.hsm
def test_pdfsig_accepts_augmented_and_renewed(
    cpki: CertomancerPki, cpki_nss_db: str, tmp_path: Path
) -> None:
    policy = SigningPolicy(level="B-T", tsa_url=cpki.tsa_url)
    with PadesSigner(policy, _hsm_source(cpki)) as signer:
        bt = signer.sign(make_pdf()).pdf
    renewed = renew(
        augment(bt, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url),
        trust_roots=[cpki.root_der],
        tsa_url=cpki.tsa_url,
    )
    path = tmp_path / "renewed.pdf"
    path.write_bytes(renewed)

    out = _pdfsig(cpki_nss_db, path)
    assert out.count("Signature Type: ETSI.CAdES.detached") == 1, out
    assert out.count("Signature is Valid.") == 1, out
    assert validate(renewed, trust_roots=[cpki.root_der]).signatures[0].level == "B-LTA"


# -- PDF/A: every revision we write keeps /Info and XMP in step -----------------------------
# ISO 19005-2 6.6.2.3: each /Info entry must agree with its XMP equivalent. pyHanko's own
# B-LT/B-LTA/renewal helpers write revisions with a plain writer: /Info /ModDate and
# xmp:ModifyDate come from two reads of the wall clock (one second apart at a boundary) and
# the producer is appended in /Info but replaced in XMP. Every revision must carry the time
# of the operation that wrote it; the clocks below lie in the past, so a revision that read
# the wall clock instead (any pyHanko-written one) fails deterministically, not by luck.

_PDFA_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:pdf="http://ns.adobe.com/pdf/1.3/">'
    b"<pdfaid:part>2</pdfaid:part><pdfaid:conformance>B</pdfaid:conformance>"
    b"<xmp:CreateDate>2024-03-01T09:00:00+00:00</xmp:CreateDate>"
    b"<xmp:ModifyDate>2024-03-01T09:00:00+00:00</xmp:ModifyDate>"
    b"<pdf:Producer>Agency DMS</pdf:Producer>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


def _pdfa_with_dates() -> bytes:
    """A PDF/A-2b shaped document whose /Info has ModDate, CreationDate and Producer that
    agree with its XMP (so there is something to keep in step)."""
    objects = [
        b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n" % len(_PDFA_XMP)
        + _PDFA_XMP
        + b"\nendstream",
        b"<< /Type /OutputIntent /S /GTS_PDFA1 /OutputConditionIdentifier (sRGB) >>",
        b"<< /Producer (Agency DMS) /CreationDate (D:20240301090000+00'00') "
        b"/ModDate (D:20240301090000+00'00') >>",
    ]
    pdf = make_pdf(extra_catalog=b"/Metadata 6 0 R /OutputIntents [7 0 R] ", extra_objects=objects)
    pdf = pdf.replace(b"/Root 1 0 R", b"/Root 1 0 R /Info 8 0 R")
    body = pdf[: pdf.index(b"\nxref\n") + 1]  # the edit moved nothing before the xref
    offsets = [m.start() for m in re.finditer(rb"(?m)^\d+ 0 obj\n", body)]
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    xref += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = pdf[pdf.index(b"trailer") : pdf.index(b"startxref")]
    return body + xref + trailer + b"startxref\n%d\n%%%%EOF\n" % len(body)


_XMP_NS = {
    b"xmp": "http://ns.adobe.com/xap/1.0/",
    b"pdf": "http://ns.adobe.com/pdf/1.3/",
    b"pdfaid": "http://www.aiim.org/pdfa/ns/id/",
}


def _xmp_value(xmp: bytes, name: bytes) -> str:
    """One simple XMP property, written as an element or as an attribute (pyHanko
    rewrites the packet in the attribute form)."""
    prefix, local = name.split(b":")
    key = f"{{{_XMP_NS[prefix]}}}{local.decode()}"
    packet = xmp[xmp.index(b"<x:xmpmeta") : xmp.index(b"</x:xmpmeta>") + 12]
    rdf = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description"
    values = []
    for description in ElementTree.fromstring(packet).iter(rdf):
        if key in description.attrib:
            values.append(description.attrib[key])
        values.extend(child.text or "" for child in description.findall(key))
    (value,) = values
    return value


def _revision_facts(pdf: bytes, start: int) -> list[dict[str, object]]:
    """/Info and XMP as of every revision that ends after byte ``start``."""
    facts = []
    for match in re.finditer(rb"%%EOF", pdf):
        if match.end() <= start:
            continue
        reader = PdfFileReader(io.BytesIO(pdf[: match.end()]), strict=False)
        info = reader.trailer["/Info"].get_object()
        xmp = reader.root["/Metadata"].get_object().data
        facts.append(
            {
                "info_moddate": parse_pdf_date(str(info["/ModDate"])),
                "xmp_moddate": datetime.fromisoformat(_xmp_value(xmp, b"xmp:ModifyDate")),
                "info_producer": str(info["/Producer"]),
                "xmp_producer": _xmp_value(xmp, b"pdf:Producer"),
                "info_created": parse_pdf_date(str(info["/CreationDate"])),
                "xmp_created": datetime.fromisoformat(_xmp_value(xmp, b"xmp:CreateDate")),
                "pdfaid": (_xmp_value(xmp, b"pdfaid:part"), _xmp_value(xmp, b"pdfaid:conformance")),
                "encrypted": reader.encrypted or "/Encrypt" in reader.trailer,
            }
        )
    return facts


def _assert_revisions_in_step(pdf: bytes, start: int, written_at: list[datetime]) -> None:
    """Each revision after ``start`` has /Info == XMP, the given time, PDF/A-2b, no
    encryption; ``written_at`` lists the expected time per revision, oldest first."""
    facts = _revision_facts(pdf, start)
    assert len(facts) == len(written_at), facts
    for fact, moment in zip(facts, written_at, strict=True):
        assert fact["info_moddate"] == fact["xmp_moddate"] == moment, fact
        assert fact["info_producer"] == fact["xmp_producer"], fact
        assert fact["info_created"] == fact["xmp_created"], fact  # untouched, still agree
        assert fact["pdfaid"] == ("2", "B") and not fact["encrypted"], fact


def _clock(moment: datetime) -> datetime:
    return moment


@pytest.mark.parametrize(
    ("level", "revisions"),
    # B-LT: signature + DSS; B-LTA: signature + (DSS, document time-stamp) + TSA's DSS.
    [("B-B", 1), ("B-T", 1), ("B-LT", 2), ("B-LTA", 3)],
)
def test_pdfa_every_revision_of_a_seal_keeps_info_and_xmp_in_step(
    cpki: CertomancerPki, cpki_nss_db: str, tmp_path: Path, level: str, revisions: int
) -> None:
    original = _pdfa_with_dates()
    sealed_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
    keys = Pkcs12KeySource(cpki.p12_path("signer-rsa2048"), None)
    with PadesSigner(
        policy, keys, trust_roots=[cpki.root_der], clock=lambda: _clock(sealed_at)
    ) as signer:
        signed = signer.sign(original)

    assert signed.pdf.startswith(original)
    _assert_revisions_in_step(signed.pdf, len(original), [sealed_at] * revisions)
    path = tmp_path / f"pdfa-{level}.pdf"
    path.write_bytes(signed.pdf)
    out = _pdfsig(cpki_nss_db, path)
    assert out.count("Signature is Valid.") == 1, out
    report = validate(signed.pdf, trust_roots=[cpki.root_der])
    assert report.valid and report.signatures[0].level == level, report.to_dict()


def test_pdfa_every_revision_of_upkeep_keeps_info_and_xmp_in_step(
    cpki: CertomancerPki, cpki_nss_db: str, tmp_path: Path
) -> None:
    # Intake at B-T, augment to B-LT, then to B-LTA, then renew the archive time-stamp.
    original = _pdfa_with_dates()
    now = datetime.now(UTC).replace(microsecond=0)
    sealed_at, lt_at, lta_at, renewed_at = (now - timedelta(seconds=s) for s in (50, 40, 30, 20))
    policy = SigningPolicy(level="B-T", tsa_url=cpki.tsa_url)
    keys = Pkcs12KeySource(cpki.p12_path("signer-rsa2048"), None)
    with PadesSigner(policy, keys, clock=lambda: _clock(sealed_at)) as signer:
        bt = signer.sign(original).pdf
    roots = [cpki.root_der]
    lt = augment(bt, trust_roots=roots, level="B-LT", clock=lambda: _clock(lt_at))
    lta = augment(lt, trust_roots=roots, tsa_url=cpki.tsa_url, clock=lambda: _clock(lta_at))
    renewed = renew(lta, trust_roots=roots, tsa_url=cpki.tsa_url, clock=lambda: _clock(renewed_at))

    assert renewed.startswith(lta) and lta.startswith(lt) and lt.startswith(bt)
    # B-T 1 revision; B-LT +1 (DSS); B-LTA +3 (DSS, time-stamp, TSA's DSS); renewal +2
    # ((DSS for the previous time-stamp, new time-stamp), TSA's DSS).
    _assert_revisions_in_step(
        renewed,
        len(original),
        [sealed_at] + [lt_at] + [lta_at] * 3 + [renewed_at] * 2,
    )
    path = tmp_path / "pdfa-renewed.pdf"
    path.write_bytes(renewed)
    out = _pdfsig(cpki_nss_db, path)
    assert out.count("Signature Type: ETSI.CAdES.detached") == 1, out
    assert out.count("Signature is Valid.") == 1, out
    report = validate(renewed, trust_roots=roots)
    assert report.valid and report.signatures[0].level == "B-LTA", report.to_dict()
