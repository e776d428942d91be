"""Key-source contract fixtures: the same suite runs against PKCS#12 files and a SoftHSM2
token (PKCS#11), both holding keys certified by the certomancer test PKI."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from signing.keys import KeySource, Pkcs11KeySource, Pkcs12KeySource
from tests.support.pki import (
    PIN,
    SOFTHSM_MODULE,
    TOKEN_LABEL,
    CertomancerPki,
    running_pki,
)

PASSPHRASE = b"contract-secret"


@pytest.fixture(scope="session")
def cpki() -> CertomancerPki:
    return running_pki()


@pytest.fixture(scope="session")
def softhsm(cpki: CertomancerPki) -> None:
    token = cpki.softhsm_token()
    # Read by SoftHSM2 when the module is initialised, i.e. on the first session.
    os.environ["SOFTHSM2_CONF"] = str(token.conf)


@dataclass(frozen=True)
class SourceFactory:
    """Builds the key source under test, with the right or a wrong secret."""

    kind: str
    signer: str
    make: Callable[[bool], KeySource]


def _p12_with_passphrase(cpki: CertomancerPki, signer: str, directory: Path) -> Path:
    key = serialization.load_pem_private_key(cpki.key_path(signer).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(cpki.cert_path(signer).read_bytes())
    cas = [
        x509.load_pem_x509_certificate(cpki.cert_path(n).read_bytes()) for n in ("root", "interm")
    ]
    path = directory / f"{signer}.p12"
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"seal",
            key,  # type: ignore[arg-type]
            cert,
            cas,
            serialization.BestAvailableEncryption(PASSPHRASE),
        )
    )
    return path


@pytest.fixture(
    scope="session",
    params=[
        ("pkcs12", "signer-rsa2048"),
        ("pkcs12", "signer-ec256"),
        ("pkcs11", "signer-rsa2048"),
        ("pkcs11", "signer-rsa3072"),
        ("pkcs11", "signer-ec256"),
    ],
    ids=lambda p: f"{p[0]}-{p[1].removeprefix('signer-')}",
)
def source_factory(
    request: pytest.FixtureRequest,
    cpki: CertomancerPki,
    tmp_path_factory: pytest.TempPathFactory,
) -> SourceFactory:
    kind, signer = request.param
    if kind == "pkcs12":
        path = _p12_with_passphrase(cpki, signer, tmp_path_factory.mktemp("p12"))
        return SourceFactory(
            kind, signer, lambda ok: Pkcs12KeySource(path, PASSPHRASE if ok else b"wrong")
        )
    request.getfixturevalue("softhsm")
    return SourceFactory(
        kind,
        signer,
        lambda ok: Pkcs11KeySource(SOFTHSM_MODULE, TOKEN_LABEL, signer, PIN if ok else "9999"),
    )
