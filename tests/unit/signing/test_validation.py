from __future__ import annotations

import io
import json

import pytest
from pyhanko.pdf_utils.generic import NameObject, StreamObject
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from signing.devpki import DevPki
from signing.errors import UnreadablePdfError
from signing.pades import PadesSigner
from signing.validation import validate
from tests.support.pdfs import make_pdf, not_a_pdf, truncated_pdf


def test_untrusted_root_is_indeterminate(pades_signer: PadesSigner, foreign_root: bytes) -> None:
    signed = pades_signer.sign(make_pdf())
    report = validate(signed.pdf, trust_roots=[foreign_root])
    assert not report.valid
    (check,) = report.signatures
    assert check.intact and check.valid and not check.trusted
    assert check.indication == "INDETERMINATE"
    assert check.sub_indication == "NO_CERTIFICATE_CHAIN_FOUND"
    assert check.level is None


def test_no_trust_roots_is_indeterminate(pades_signer: PadesSigner) -> None:
    report = validate(pades_signer.sign(make_pdf()).pdf, trust_roots=[])
    assert report.signatures[0].indication == "INDETERMINATE"


def test_tampered_byte_is_total_failed(pades_signer: PadesSigner, signing_pki: DevPki) -> None:
    original = make_pdf(["Bedrag: 100 euro"], compress=False)
    signed = bytearray(pades_signer.sign(original).pdf)
    at = signed.index(b"Bedrag: 100") + len(b"Bedrag: ")
    signed[at] = ord("9")  # same length, still a parseable PDF; inside the signed range

    report = validate(bytes(signed), trust_roots=signing_pki.trust_roots())
    assert not report.valid
    (check,) = report.signatures
    assert not check.intact
    assert (check.indication, check.sub_indication) == ("TOTAL-FAILED", "HASH_FAILURE")


def test_content_changed_after_signing_is_total_failed(
    pades_signer: PadesSigner, signing_pki: DevPki
) -> None:
    signed = pades_signer.sign(make_pdf(["Origineel"])).pdf
    writer = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    forged = StreamObject(stream_data=b"BT /F1 12 Tf 72 770 Td (Vervalst) Tj ET")
    page[NameObject("/Contents")] = writer.add_object(forged)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]

    report = validate(out.getvalue(), trust_roots=signing_pki.trust_roots())
    (check,) = report.signatures
    assert check.intact and check.valid and check.trusted
    assert check.coverage == "entire-revision"
    assert check.modification_level == "other"
    assert (check.indication, check.sub_indication) == ("TOTAL-FAILED", "FORMAT_FAILURE")
    assert not report.valid


def test_unsigned_pdf_has_no_signatures(signing_pki: DevPki) -> None:
    report = validate(make_pdf(), trust_roots=signing_pki.trust_roots())
    assert report.signatures == ()
    assert not report.valid
    assert report.to_dict() == {
        "valid": False,
        "signatures": [],
        "document_timestamps": [],
        "dss": None,
    }


def test_report_is_json_ready(pades_signer: PadesSigner, signing_pki: DevPki) -> None:
    signed = pades_signer.sign(make_pdf())
    data = validate(signed.pdf, trust_roots=signing_pki.trust_roots()).to_dict()
    text = json.dumps(data)
    assert json.loads(text)["signatures"][0]["signed_at"] == signed.signed_at.isoformat()
    assert data["valid"] is True


@pytest.mark.parametrize(
    "bad", [truncated_pdf(), not_a_pdf(), b""], ids=["truncated", "zip", "empty"]
)
def test_unreadable_input(bad: bytes, signing_pki: DevPki) -> None:
    with pytest.raises(UnreadablePdfError):
        validate(bad, trust_roots=signing_pki.trust_roots())


def test_bad_trust_root_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="trust root #0"):
        validate(make_pdf(), trust_roots=[b"not a certificate"])
