"""Fixtures for the signing tests: one dev PKI per session (RSA-3072 generation is slow),
a fixed clock, a ready PadesSigner and an unrelated trust root."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signing.devpki import DevPki, ensure_dev_pki
from signing.keys import Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from tests.support.pdfs import make_pdf
from tests.support.pki import CertomancerPki, running_pki

# Not "now": signatures must carry the injected time, and it must lie inside the validity
# of certificates generated during the test run (they start 5 minutes before generation).
FIXED_NOW = datetime.now(UTC).replace(microsecond=123456) + timedelta(minutes=1)


@pytest.fixture(scope="session")
def signing_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_dev_pki(tmp_path_factory.mktemp("signing-pki") / "dev-pki")


@pytest.fixture
def pades_signer(signing_pki: DevPki) -> Iterator[PadesSigner]:
    with PadesSigner(SigningPolicy(), signing_pki.key_source(), clock=lambda: FIXED_NOW) as signer:
        yield signer


@pytest.fixture(scope="session")
def foreign_root() -> bytes:
    """DER of a self-signed CA that has nothing to do with the dev PKI."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some other CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="session")
def cpki() -> CertomancerPki:
    """The certomancer test PKI (TSA, OCSP, CRLs) served on a loopback port."""
    return running_pki()


@pytest.fixture(scope="session")
def cpki_source(cpki: CertomancerPki) -> Pkcs12KeySource:
    return Pkcs12KeySource(cpki.p12_path("signer-rsa2048"), None)


@pytest.fixture(scope="session")
def signed_bt(cpki: CertomancerPki, cpki_source: Pkcs12KeySource) -> bytes:
    """A B-T document (intake), to be augmented by the upkeep tests."""
    policy = SigningPolicy(level="B-T", tsa_url=cpki.tsa_url)
    with PadesSigner(policy, cpki_source) as signer:
        return signer.sign(make_pdf(["Besluit", "Gezegeld op B-T."])).pdf
