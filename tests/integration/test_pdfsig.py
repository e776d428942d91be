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

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from signing.devpki import DevPki, ensure_dev_pki
from signing.keys import Pkcs11KeySource
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
