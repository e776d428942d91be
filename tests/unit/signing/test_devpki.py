from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, ObjectIdentifier

from signing.devpki import CA_COMMON_NAME, SIGNER_COMMON_NAME, DevPki, ensure_dev_pki
from signing.errors import KeySourceError

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _signer_cert(pki: DevPki) -> x509.Certificate:
    _, cert, _ = pkcs12.load_key_and_certificates(pki.signer_p12.read_bytes(), pki.passphrase)
    assert cert is not None
    return cert


def test_layout_and_permissions(signing_pki: DevPki) -> None:
    directory = signing_pki.directory
    assert sorted(p.name for p in directory.iterdir()) == [
        "README.txt",
        "ca.pem",
        "signer.p12",
        "signer.passphrase",
    ]
    assert stat.S_IMODE(os.stat(directory / "signer.passphrase").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory / "signer.p12").st_mode) == 0o600
    assert (directory / "signer.passphrase").read_bytes().strip() == signing_pki.passphrase
    assert "NOT FOR PRODUCTION" in (directory / "README.txt").read_text()
    assert signing_pki.passphrase.decode() not in repr(signing_pki)


def test_certificates_follow_the_profile(signing_pki: DevPki) -> None:
    ca = x509.load_pem_x509_certificate(signing_pki.ca_cert_pem.read_bytes())
    signer = _signer_cert(signing_pki)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CA_COMMON_NAME
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert signer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        SIGNER_COMMON_NAME
    )
    assert signer.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "Kluis development"
    )
    assert signer.issuer == ca.subject
    for cert in (ca, signer):
        public_key = cert.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 3072
        oids = {ext.oid for ext in cert.extensions}
        # pdfsig/NSS cannot validate certificates pointing at unreachable revocation sources.
        assert ExtensionOID.CRL_DISTRIBUTION_POINTS not in oids
        assert ExtensionOID.AUTHORITY_INFORMATION_ACCESS not in oids
    usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    eku = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert DOCUMENT_SIGNING in eku and ExtendedKeyUsageOID.EMAIL_PROTECTION in eku


def test_validity_comes_from_the_clock(tmp_path: Path) -> None:
    start = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    pki = ensure_dev_pki(tmp_path / "pki", clock=lambda: start)
    ca = x509.load_pem_x509_certificate(pki.ca_cert_pem.read_bytes())
    signer = _signer_cert(pki)
    assert ca.not_valid_before_utc == signer.not_valid_before_utc == start - timedelta(minutes=5)
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == timedelta(days=20 * 365)
    assert signer.not_valid_after_utc - signer.not_valid_before_utc == timedelta(days=5 * 365)


def test_is_idempotent(signing_pki: DevPki) -> None:
    before = _snapshot(signing_pki.directory)
    again = ensure_dev_pki(signing_pki.directory)
    assert again == signing_pki
    assert _snapshot(signing_pki.directory) == before


def test_key_source_and_trust_roots(signing_pki: DevPki) -> None:
    chain = signing_pki.key_source().certificate_chain()
    assert chain[-1] == signing_pki.trust_roots()[0]
    assert len(chain) == 2


def test_empty_directory_is_filled(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    pki = ensure_dev_pki(tmp_path / "pki")
    assert pki.signer_p12.is_file()


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "ca.pem").write_text("something else")
    with pytest.raises(KeySourceError) as info:
        ensure_dev_pki(tmp_path / "pki")
    assert "signer.p12" in info.value.reason
    assert _snapshot(tmp_path / "pki") == {"ca.pem": b"something else"}


def test_no_staging_directories_are_left_behind(tmp_path: Path) -> None:
    ensure_dev_pki(tmp_path / "pki")
    assert [p.name for p in tmp_path.iterdir()] == ["pki"]


_RACE = """
import sys
from pathlib import Path
from signing.devpki import ensure_dev_pki
from signing.keys import Pkcs12KeySource
sys.stdin.readline()  # start together
pki = ensure_dev_pki(Path(sys.argv[1]))
print(pki.key_source().certificate_chain()[0].hex())
"""


@pytest.mark.slow
def test_concurrent_first_use_by_two_processes(tmp_path: Path) -> None:
    target = tmp_path / "pki"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, str(target)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    fingerprints = {out.strip() for out, _ in results}
    assert len(fingerprints) == 1  # both use the winner's certificate
    assert [p.name for p in tmp_path.iterdir()] == ["pki"]
    assert sorted(p.name for p in target.iterdir()) == [
        "README.txt",
        "ca.pem",
        "signer.p12",
        "signer.passphrase",
    ]
