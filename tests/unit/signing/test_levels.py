"""PAdES B-B .. B-LTA against the certomancer PKI, the B-T-then-augment flow, renewal and
the expiry report. Real TSA/OCSP/CRL over loopback HTTP; nothing in pyHanko is mocked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from signing.errors import UnreadablePdfError
from signing.keys import Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.upkeep import augment, evidence_expiry, expiry_report, renew
from signing.validation import validate
from tests.support.pdfs import make_pdf
from tests.support.pki import CertomancerPki


@pytest.mark.parametrize(
    ("level", "ltv", "dss", "doc_ts"),
    [
        ("B-B", ("INDETERMINATE", "SIG_CONSTRAINTS_FAILURE"), False, 0),
        ("B-T", ("INDETERMINATE", "NO_POE"), False, 0),
        # One shot: revocation data is fetched before the time-stamp (REPORT §2).
        ("B-LT", ("INDETERMINATE", "NO_POE"), True, 0),
        ("B-LTA", ("TOTAL-PASSED", None), True, 1),
    ],
)
def test_each_level_is_produced_and_detected(
    cpki: CertomancerPki,
    cpki_source: Pkcs12KeySource,
    level: str,
    ltv: tuple[str, str | None],
    dss: bool,
    doc_ts: int,
) -> None:
    policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
    original = make_pdf(["Attest", level])
    with PadesSigner(policy, cpki_source, trust_roots=[cpki.root_der]) as signer:
        signed = signer.sign(original)
    assert signed.level == level
    assert signed.pdf.startswith(original)

    report = validate(signed.pdf, trust_roots=[cpki.root_der])
    assert report.valid, report.to_dict()
    (check,) = report.signatures
    assert check.level == level
    assert (check.indication, check.sub_indication) == ("TOTAL-PASSED", None)
    assert (check.ltv_indication, check.ltv_sub_indication) == ltv
    assert (check.timestamp_at is None) == (level == "B-B")
    assert (report.dss is not None) == dss
    assert len(report.document_timestamps) == doc_ts
    assert check.chain[0] == check.signer_subject and "Root" in check.chain[-1]
    as_json = report.to_dict()
    assert as_json["signatures"][0]["level"] == level  # type: ignore[index]


def test_b_t_then_augment_passes_strict_ades(cpki: CertomancerPki, signed_bt: bytes) -> None:
    lt = augment(signed_bt, trust_roots=[cpki.root_der], level="B-LT")
    lta = augment(signed_bt, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)

    assert lt.startswith(signed_bt) and lta.startswith(signed_bt)  # incremental only
    (lt_check,) = validate(lt, trust_roots=[cpki.root_der]).signatures
    assert lt_check.level == "B-LT"
    report = validate(lta, trust_roots=[cpki.root_der])
    assert report.valid
    (check,) = report.signatures
    assert check.level == "B-LTA"
    assert (check.ltv_indication, check.ltv_sub_indication) == ("TOTAL-PASSED", None)
    assert check.modification_level == "lta-updates"
    assert report.dss is not None and report.dss["ocsps"] >= 1 and report.dss["crls"] >= 1


def test_renew_adds_a_newer_document_timestamp(cpki: CertomancerPki, signed_bt: bytes) -> None:
    lta = renew(signed_bt, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)  # B-T -> LTA
    renewed = renew(lta, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)

    assert renewed.startswith(lta) and len(renewed) > len(lta)
    report = validate(renewed, trust_roots=[cpki.root_der])
    assert report.valid
    assert [t.intact and t.trusted for t in report.document_timestamps] == [True, True]
    first, second = (t.timestamp_at for t in report.document_timestamps)
    assert first is not None and second is not None and second >= first
    assert report.signatures[0].ltv_indication == "TOTAL-PASSED"
    assert evidence_expiry("x", renewed).newest_timestamp_at == second


def test_expiry_report_lists_what_expires_within_the_window(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource, signed_bt: bytes
) -> None:
    with PadesSigner(SigningPolicy(), cpki_source) as signer:
        bb = signer.sign(make_pdf()).pdf
    lta = augment(signed_bt, trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)
    docs = [("bb", bb), ("lta", lta), ("broken", b"%PDF-1.7 not really")]
    now = datetime(2026, 6, 1, tzinfo=UTC)

    facts = {e.document: e for e in expiry_report(docs, within=timedelta(days=365 * 100), now=now)}
    assert facts["bb"].newest_timestamp_at is None
    assert facts["bb"].expires == datetime(2035, 1, 1, tzinfo=UTC)  # signer certificate
    assert facts["lta"].expires == datetime(2045, 1, 1, tzinfo=UTC)  # TSA certificate
    assert facts["broken"].expires is None

    soon = expiry_report(docs, within=timedelta(days=365 * 10), now=now)
    assert [e.document for e in soon] == ["broken", "bb"]
    assert soon[1].to_dict()["expires"] == "2035-01-01T00:00:00+00:00"


def test_augment_refuses_unsigned_and_unreadable_input(cpki: CertomancerPki) -> None:
    with pytest.raises(UnreadablePdfError, match="no signature"):
        augment(make_pdf(), trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)
    with pytest.raises(UnreadablePdfError):
        augment(b"garbage", trust_roots=[cpki.root_der], tsa_url=cpki.tsa_url)
    with pytest.raises(ValueError, match="tsa_url"):
        augment(make_pdf(), trust_roots=[cpki.root_der], level="B-LTA")


def test_policy_needs_a_tsa_above_b_b() -> None:
    with pytest.raises(ValueError, match="tsa_url"):
        SigningPolicy(level="B-T")
    with pytest.raises(ValueError, match="http"):
        SigningPolicy(level="B-T", tsa_url="ftp://tsa")


def test_b_lt_needs_trust_roots(cpki: CertomancerPki, cpki_source: Pkcs12KeySource) -> None:
    with pytest.raises(ValueError, match="trust_roots"):
        PadesSigner(SigningPolicy(level="B-LT", tsa_url=cpki.tsa_url), cpki_source)


def test_unreachable_tsa_is_a_clean_error(cpki_source: Pkcs12KeySource) -> None:
    from signing.errors import SignatureFailedError

    policy = SigningPolicy(level="B-T", tsa_url="http://127.0.0.1:9/tsa")
    with PadesSigner(policy, cpki_source) as signer, pytest.raises(SignatureFailedError):
        signer.sign(make_pdf())
