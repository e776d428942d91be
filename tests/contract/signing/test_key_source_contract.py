"""Contract of :class:`signing.keys.KeySource`: PKCS#12 and PKCS#11 (SoftHSM2) behave alike.

Every source signs real PAdES documents that pyHanko validates against the test root.
"""

from __future__ import annotations

import pytest

from signing.errors import KeySourceError
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.validation import validate
from tests.contract.signing.conftest import PASSPHRASE, SourceFactory
from tests.support.pdfs import make_pdf
from tests.support.pki import PIN, CertomancerPki

pytestmark = pytest.mark.hsm


def test_chain_is_signer_intermediate_root(
    source_factory: SourceFactory, cpki: CertomancerPki
) -> None:
    chain = source_factory.make(True).certificate_chain()
    assert chain == (
        cpki.cert_der(source_factory.signer),
        cpki.cert_der("interm"),
        cpki.cert_der("root"),
    )


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_signs_documents_that_validate(
    source_factory: SourceFactory, cpki: CertomancerPki, level: str
) -> None:
    source = source_factory.make(True)
    policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
    with PadesSigner(policy, source, trust_roots=[cpki.root_der]) as signer:
        first = signer.sign(make_pdf(["Attest", source_factory.kind]))
        second = signer.sign(make_pdf(["Tweede attest"]))  # the signer is reused
    for signed in (first, second):
        report = validate(signed.pdf, trust_roots=[cpki.root_der])
        assert report.valid, report.to_dict()
        (check,) = report.signatures
        assert check.level == level
        assert check.signer_subject == signed.signer_subject
        assert len(check.chain) == 3


def test_wrong_secret_is_a_key_source_error(source_factory: SourceFactory) -> None:
    source = source_factory.make(False)
    with pytest.raises(KeySourceError) as info, source.open_signer():
        pass
    text = str(info.value) + repr(source)
    assert PASSPHRASE.decode() not in text and PIN not in text.replace(source.name, "")


def test_name_and_repr_hide_the_secret(source_factory: SourceFactory) -> None:
    source = source_factory.make(True)
    assert PASSPHRASE.decode() not in repr(source) + source.name
    assert f"'{PIN}'" not in repr(source)


def test_can_be_opened_again_after_close(source_factory: SourceFactory) -> None:
    source = source_factory.make(True)
    for _ in range(2):
        with source.open_signer() as signer:
            assert signer.signing_cert is not None
