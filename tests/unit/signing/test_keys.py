from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from signing.devpki import DevPki
from signing.errors import KeySourceError
from signing.keys import KeySource, Pkcs12KeySource


def test_chain_is_signer_first_then_root(signing_pki: DevPki) -> None:
    source: KeySource = signing_pki.key_source()
    chain = source.certificate_chain()
    signer, root = (x509.load_der_x509_certificate(der) for der in chain)
    assert signer.issuer == root.subject
    assert root.issuer == root.subject


def test_open_signer_yields_a_reusable_pyhanko_signer(signing_pki: DevPki) -> None:
    source = signing_pki.key_source()
    with source.open_signer() as signer:
        assert signer.signing_cert.dump() == source.certificate_chain()[0]


def test_repr_hides_the_passphrase(signing_pki: DevPki) -> None:
    source = signing_pki.key_source()
    assert signing_pki.passphrase.decode() not in repr(source)
    assert source.name == f"pkcs12:{signing_pki.signer_p12}"


def test_wrong_passphrase(signing_pki: DevPki) -> None:
    source = Pkcs12KeySource(signing_pki.signer_p12, b"wrong")
    with pytest.raises(KeySourceError) as info:
        source.certificate_chain()
    assert info.value.source == source.name
    assert "passphrase" in info.value.reason
    assert info.value.__cause__ is not None


def test_missing_file(tmp_path: Path) -> None:
    source = Pkcs12KeySource(tmp_path / "absent.p12", None)
    with pytest.raises(KeySourceError, match="cannot read file"), source.open_signer():
        pass  # pragma: no cover


def test_not_a_pkcs12_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.p12"
    path.write_bytes(b"-----BEGIN NOTHING-----")
    with pytest.raises(KeySourceError):
        Pkcs12KeySource(path, b"x").certificate_chain()
