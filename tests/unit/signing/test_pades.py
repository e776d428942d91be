from __future__ import annotations

import asyncio
import hashlib
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from cryptography import x509

from signing.devpki import DevPki
from signing.errors import SignatureFailedError, SigningError, UnreadablePdfError
from signing.pades import PadesSigner, SignedPdf
from signing.policy import SigningPolicy
from signing.validation import validate
from tests.support.pdfs import encrypted_pdf, javascript_pdf, make_pdf, not_a_pdf, truncated_pdf
from tests.unit.signing.conftest import FIXED_NOW


def test_signed_pdf_validates_as_b_b(pades_signer: PadesSigner, signing_pki: DevPki) -> None:
    original = make_pdf(["Attest", "Dit is een attest."])
    signed = pades_signer.sign(original)

    assert signed.pdf.startswith(original)  # incremental update: revision 1 is untouched
    assert signed.level == "B-B"
    assert signed.signed_at == FIXED_NOW.replace(microsecond=0)
    assert signed.signed_at.tzinfo is UTC
    cert_der = signing_pki.key_source().certificate_chain()[0]
    assert signed.certificate_sha256 == hashlib.sha256(cert_der).hexdigest()
    assert signed.signer_subject == (
        x509.load_der_x509_certificate(cert_der).subject.rfc4514_string()
    )
    assert b"/ETSI.CAdES.detached" in signed.pdf[len(original) :]

    report = validate(signed.pdf, trust_roots=signing_pki.trust_roots())
    assert report.valid
    (check,) = report.signatures
    assert (check.indication, check.sub_indication, check.level) == ("TOTAL-PASSED", None, "B-B")
    assert check.intact and check.valid and check.trusted
    assert check.field_name == "KluisSeal"
    assert check.coverage == "entire-file" and check.modification_level == "none"
    assert check.signed_at == signed.signed_at
    assert check.signer_subject == signed.signer_subject


def test_resigning_keeps_earlier_signatures_valid(
    pades_signer: PadesSigner, signing_pki: DevPki
) -> None:
    once = pades_signer.sign(make_pdf())
    twice = pades_signer.sign(once.pdf)
    thrice = pades_signer.sign(twice.pdf)

    report = validate(thrice.pdf, trust_roots=signing_pki.trust_roots())
    assert report.valid
    assert [s.field_name for s in report.signatures] == ["KluisSeal", "KluisSeal-2", "KluisSeal-3"]
    assert [s.coverage for s in report.signatures] == [
        "entire-revision",
        "entire-revision",
        "entire-file",
    ]
    assert all(s.indication == "TOTAL-PASSED" for s in report.signatures)


def test_field_name_and_texts_come_from_the_policy(signing_pki: DevPki) -> None:
    policy = SigningPolicy(reason="Test reden", location="Gent", field_name="Zegel")
    with PadesSigner(policy, signing_pki.key_source()) as signer:
        signed = signer.sign(make_pdf())
    assert b"(Test reden)" in signed.pdf and b"(Gent)" in signed.pdf
    (check,) = validate(signed.pdf, trust_roots=signing_pki.trust_roots()).signatures
    assert check.field_name == "Zegel"


def test_large_pdf(pades_signer: PadesSigner, signing_pki: DevPki) -> None:
    original = make_pdf(pages=20, padding_bytes=5 * 1024 * 1024)
    signed = pades_signer.sign(original)
    assert len(signed.pdf) > 5 * 1024 * 1024
    assert validate(signed.pdf, trust_roots=signing_pki.trust_roots()).valid


def test_javascript_pdf_is_signed_unchanged(pades_signer: PadesSigner) -> None:
    # Content policy is ingest's job; signing must not rewrite the document.
    original = javascript_pdf()
    assert pades_signer.sign(original).pdf.startswith(original)


@pytest.mark.parametrize(
    "bad",
    [truncated_pdf(), not_a_pdf(), b"", b"%PDF-1.7\n%%EOF\n", encrypted_pdf()],
    ids=["truncated", "not-a-pdf", "empty", "header-only", "encrypted"],
)
def test_unreadable_input(pades_signer: PadesSigner, bad: bytes) -> None:
    with pytest.raises(UnreadablePdfError) as info:
        pades_signer.sign(bad)
    assert info.value.reason


def test_no_foreign_exception_escapes_on_damaged_input(pades_signer: PadesSigner) -> None:
    original = make_pdf(pages=2)
    rng = random.Random(20240601)
    outcomes: set[str] = set()
    for _ in range(40):
        damaged = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            pades_signer.sign(bytes(damaged))
            outcomes.add("signed")
        except SigningError as exc:
            outcomes.add(type(exc).__name__)
    assert outcomes <= {"signed", "UnreadablePdfError", "SignatureFailedError"}


def test_thread_safe(pades_signer: PadesSigner, signing_pki: DevPki) -> None:
    docs = [make_pdf([f"Document {i}"]) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(pades_signer.sign, docs))
    for doc, result in zip(docs, results, strict=True):
        assert result.pdf.startswith(doc)
        assert validate(result.pdf, trust_roots=signing_pki.trust_roots()).valid


def test_naive_clock_is_refused(signing_pki: DevPki) -> None:
    signer = PadesSigner(SigningPolicy(), signing_pki.key_source(), clock=datetime.now)
    with signer, pytest.raises(SignatureFailedError, match="naive"):
        signer.sign(make_pdf())


def test_closed_signer_refuses(signing_pki: DevPki) -> None:
    signer = PadesSigner(SigningPolicy(), signing_pki.key_source())
    signer.close()
    signer.close()  # idempotent
    with pytest.raises(SignatureFailedError, match="closed"):
        signer.sign(make_pdf())


def test_refuses_to_run_inside_an_event_loop(pades_signer: PadesSigner) -> None:
    async def inside_loop() -> SignedPdf:
        return pades_signer.sign(make_pdf())

    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(inside_loop())
