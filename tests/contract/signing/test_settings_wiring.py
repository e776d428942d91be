"""Settings -> key source -> seal: the production configuration paths (PKCS#12, HSM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asn1crypto.cms
import pytest
from pydantic import ValidationError

from kluis.settings import KluisSettings
from kluis.wiring import build_key_source
from signing.errors import KeySourceError
from signing.keys import Pkcs11KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.validation import validate
from tests.support.pdfs import make_pdf
from tests.support.pki import PIN, SOFTHSM_MODULE, TOKEN_LABEL, CertomancerPki


@pytest.mark.hsm
@pytest.mark.parametrize("signer", ["pkcs11", "pkcs12"])
def test_configured_key_source_seals_at_the_configured_level(
    cpki: CertomancerPki, softhsm: None, tmp_path: object, signer: str
) -> None:
    settings = KluisSettings(
        data_dir=tmp_path,  # type: ignore[arg-type]
        signer=signer,  # type: ignore[arg-type]
        pkcs11={
            "module": SOFTHSM_MODULE,
            "token_label": TOKEN_LABEL,
            "key_label": "signer-rsa2048",
            "pin": PIN,
        },
        pkcs12={"path": cpki.p12_path("signer-rsa2048")},
        signing_level="B-T",
        tsa_url=cpki.tsa_url,
        trust_roots=(cpki.cert_path("root"),),
    )
    keys, roots = build_key_source(settings)
    assert roots == (cpki.root_der,)
    policy = SigningPolicy(level=settings.signing_level, tsa_url=settings.tsa_url)
    with PadesSigner(policy, keys, trust_roots=roots) as sealer:
        signed = sealer.sign(make_pdf())
    report = validate(signed.pdf, trust_roots=roots)
    assert report.valid and report.signatures[0].level == "B-T"
    assert "1234" not in str(settings.redacted())


def test_selected_signer_needs_its_section() -> None:
    with pytest.raises(ValidationError, match="pkcs11"):
        KluisSettings(signer="pkcs11")
    with pytest.raises(ValidationError, match="tsa_url"):
        KluisSettings(signing_level="B-T")


@pytest.mark.hsm
def test_missing_module_token_or_certificate(softhsm: None) -> None:
    for source in (
        Pkcs11KeySource("/nonexistent/libpkcs11.so", TOKEN_LABEL, "signer-rsa2048", PIN),
        Pkcs11KeySource(SOFTHSM_MODULE, "no-such-token", "signer-rsa2048", PIN),
        Pkcs11KeySource(SOFTHSM_MODULE, TOKEN_LABEL, "signer-rsa2048", PIN, cert_label="nope"),
    ):
        with pytest.raises(KeySourceError):
            source.certificate_chain()


@pytest.mark.hsm
def test_static_cms_parts_match_what_pyhanko_would_embed(
    cpki: CertomancerPki, softhsm: None
) -> None:
    """The pre-encoded certificate set holds the signer path exactly once per certificate."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    source = Pkcs11KeySource(SOFTHSM_MODULE, TOKEN_LABEL, "signer-ec256", PIN)
    with PadesSigner(SigningPolicy(), source) as sealer:
        pdfs = [sealer.sign(make_pdf([str(i)])).pdf for i in range(2)]
    for pdf in pdfs:
        sig = PdfFileReader(io.BytesIO(pdf)).embedded_regular_signatures[0]
        certs = sorted(c.chosen.dump() for c in sig.signed_data["certificates"])
        assert certs == sorted(source.certificate_chain())
        assert isinstance(sig.signed_data, asn1crypto.cms.SignedData)
        assert validate(pdf, trust_roots=[cpki.root_der]).valid


@pytest.mark.hsm
def test_kluis_ingest_and_verify_with_an_hsm_at_b_t(
    cpki: CertomancerPki, softhsm: None, tmp_path: Path
) -> None:
    """The production configuration path end to end: env settings -> HSM seal at B-T ->
    `kluis verify` prints the signature report (level, chain, LTV indication)."""
    kluis = str(Path(sys.executable).parent / "kluis")
    env = dict(
        os.environ,
        KLUIS_DATA_DIR=str(tmp_path / "var"),
        KLUIS_SIGNER="pkcs11",
        KLUIS_PKCS11__MODULE=SOFTHSM_MODULE,
        KLUIS_PKCS11__TOKEN_LABEL=TOKEN_LABEL,
        KLUIS_PKCS11__KEY_LABEL="signer-ec256",
        KLUIS_PKCS11__PIN=PIN,
        KLUIS_SIGNING_LEVEL="B-T",
        KLUIS_TSA_URL=cpki.tsa_url,
        KLUIS_TRUST_ROOTS=json.dumps([str(cpki.cert_path("root"))]),
    )
    pdf = tmp_path / "besluit.pdf"
    pdf.write_bytes(make_pdf(["Besluit", "Verzegeld met een HSM."]))

    def kluis_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kluis, *args], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )

    ingested = kluis_run(
        "ingest", str(pdf), "--agency", "OVO000001", "--owner", "85073003328",
        "--type", "attest", "--title", "Besluit", "--ref", "HSM-1",
    )  # fmt: skip
    assert ingested.returncode == 0, ingested.stderr
    aip_id = json.loads(ingested.stdout)["aip_id"]
    verified = kluis_run("verify", aip_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    (sig,) = json.loads(verified.stdout)["signature"]["signatures"]
    assert sig["level"] == "B-T" and sig["indication"] == "TOTAL-PASSED"
    assert sig["signer_subject"].startswith("CN=Kluis Test Seal P256")
    assert sig["ltv_indication"] == "INDETERMINATE"  # B-T: no revocation data yet
    assert len(sig["chain"]) == 3 and sig["timestamp_at"]
