"""BatchSigner: a process pool of PadesSigners over both key sources."""

from __future__ import annotations

import functools

import pytest

from signing.batch import BatchSigner
from signing.errors import KeySourceError, UnreadablePdfError
from signing.keys import Pkcs11KeySource, Pkcs12KeySource
from signing.pades import SignedPdf
from signing.policy import SigningPolicy
from signing.validation import validate
from tests.support.pdfs import make_pdf
from tests.support.pki import PIN, SOFTHSM_MODULE, TOKEN_LABEL, CertomancerPki


@pytest.mark.hsm
@pytest.mark.parametrize(("kind", "level"), [("pkcs11", "B-B"), ("pkcs12", "B-T")])
def test_batch_signs_in_order_and_isolates_failures(
    cpki: CertomancerPki, softhsm: None, kind: str, level: str
) -> None:
    keys = (
        functools.partial(Pkcs11KeySource, SOFTHSM_MODULE, TOKEN_LABEL, "signer-rsa2048", PIN)
        if kind == "pkcs11"
        else functools.partial(Pkcs12KeySource, cpki.p12_path("signer-rsa2048"), None)
    )
    docs = [make_pdf([f"Document {i}"]) for i in range(12)]
    docs[5] = b"not a pdf"
    policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
    with BatchSigner(policy, keys, processes=2, in_flight=4) as batch:
        batch.warm_up()
        results = list(batch.sign_all(iter(docs)))

    assert len(results) == len(docs)
    assert isinstance(results[5], UnreadablePdfError)
    for doc, result in zip(docs, results, strict=True):
        if doc == b"not a pdf":
            continue
        assert isinstance(result, SignedPdf) and result.pdf.startswith(doc)
    report = validate(results[11].pdf, trust_roots=[cpki.root_der])  # type: ignore[union-attr]
    assert report.valid and report.signatures[0].level == level


@pytest.mark.hsm
def test_a_worker_that_cannot_open_its_key_reports_it(softhsm: None) -> None:
    keys = functools.partial(Pkcs11KeySource, SOFTHSM_MODULE, TOKEN_LABEL, "signer-ec256", "0000")
    with BatchSigner(SigningPolicy(), keys, processes=1) as batch:
        with pytest.raises(KeySourceError):
            batch.warm_up()
        (result,) = batch.sign_all([make_pdf()])
    assert isinstance(result, KeySourceError)
