"""Detached CAdES signatures over evidence (destruction certificates): signed with a real
key, time-stamped by the certomancer TSA over loopback, checked by our verifier and by
``openssl cms -verify`` independently."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signing.devpki import DevPki
from signing.errors import SignatureFailedError
from signing.evidence import sign_detached, verify_detached
from signing.keys import Pkcs12KeySource
from tests.support.pki import CertomancerPki

DATA = b'{"certificate_id": "c-1", "disposed": [{"document_id": "x"}]}'


def _openssl(data: bytes, signature: bytes, roots: list[bytes], tmp: Path) -> int:
    assert shutil.which("openssl"), "openssl is the independent verifier"
    pem = b"".join(
        x509.load_der_x509_certificate(r).public_bytes(serialization.Encoding.PEM) for r in roots
    )
    (tmp / "d.json").write_bytes(data)
    (tmp / "d.p7s").write_bytes(signature)
    (tmp / "roots.pem").write_bytes(pem)
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "d.p7s"),
         "-content", str(tmp / "d.json"), "-CAfile", str(tmp / "roots.pem"), "-purpose", "any",
         "-out", "/dev/null"],
        capture_output=True, check=False,
    ).returncode  # fmt: skip


def test_time_stamped_signature_verifies_here_and_with_openssl(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource, tmp_path: Path
) -> None:
    signature = sign_detached(DATA, cpki_source, tsa_url=cpki.tsa_url)
    check = verify_detached(DATA, signature, trust_roots=[cpki.root_der])
    assert check.ok, check
    assert check.timestamped_at is not None
    assert "Kluis" in check.signer_subject or check.signer_subject
    # The content is not embedded (detached) and the time-stamp is an unsigned attribute.
    signed = cms.ContentInfo.load(signature)["content"]
    assert signed["encap_content_info"]["content"].native is None
    attrs = signed["signer_infos"][0]["unsigned_attrs"].native
    assert any(a["type"] == "signature_time_stamp_token" for a in attrs)
    assert _openssl(DATA, signature, [cpki.root_der], tmp_path) == 0
    assert _openssl(DATA + b" ", signature, [cpki.root_der], tmp_path) != 0


def test_a_changed_document_or_an_unknown_root_does_not_verify(
    signing_pki: DevPki, foreign_root: bytes
) -> None:
    signature = sign_detached(DATA, signing_pki.key_source())
    assert verify_detached(DATA, signature, trust_roots=signing_pki.trust_roots()).ok
    tampered = verify_detached(DATA.replace(b"x", b"y"), signature,
                               trust_roots=signing_pki.trust_roots())  # fmt: skip
    assert not tampered.ok and not tampered.intact
    stranger = verify_detached(DATA, signature, trust_roots=[foreign_root])
    assert not stranger.ok and not stranger.trusted
    garbage = verify_detached(DATA, b"\x30\x03\x02\x01\x01", trust_roots=[foreign_root])
    assert not garbage.ok and garbage.problem


def test_an_unreachable_tsa_fails_the_signature(signing_pki: DevPki) -> None:
    with pytest.raises(SignatureFailedError):
        sign_detached(DATA, signing_pki.key_source(), tsa_url="http://127.0.0.1:9/tsa")
