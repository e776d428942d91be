"""BatchSigner: a process pool of PadesSigners over both key sources."""

from __future__ import annotations

import functools
import pickle

import pytest

from signing import batch as batch_module
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


# -- what crosses the process boundary (bench/signing.py measures its CPU cost) -------------


def test_mixed_sizes_come_back_whole_and_in_order(cpki: CertomancerPki) -> None:
    # Large documents close a chunk early (bounded memory in flight); every result is the
    # full signed PDF although workers send back only what the signature appended.
    keys = functools.partial(Pkcs12KeySource, cpki.p12_path("signer-rsa2048"), None)
    large = make_pdf(["Groot"], padding_bytes=5 * 2**20)
    docs = [make_pdf([f"Document {i}"]) for i in range(20)]
    docs[3] = docs[17] = large
    with BatchSigner(SigningPolicy(), keys, processes=2) as batch:
        results = list(batch.sign_all(iter(docs)))

    assert len(results) == len(docs)
    for doc, result in zip(docs, results, strict=True):
        assert isinstance(result, SignedPdf) and result.pdf.startswith(doc)
    for index in (3, 4, 17):
        report = validate(results[index].pdf, trust_roots=[cpki.root_der])  # type: ignore[union-attr]
        assert report.valid and report.signatures[0].coverage == "entire-file", report.to_dict()


def test_chunks_are_bounded_by_count_and_size() -> None:
    small, large = b"%PDF" + bytes(1000), b"%PDF" + bytes(5 * 2**20)
    sizes = [small] * 40 + [large] * 3 + [small] * 3
    iterator = iter(sizes)
    chunks = []
    while chunk := BatchSigner._next_chunk(_FakeBatch(), iterator):  # type: ignore[arg-type]
        chunks.append(chunk)

    # 16 small; 16 small; 8 small + 2 large (the second passes 8 MiB); 1 large + 3 small.
    assert [len(c) for c in chunks] == [16, 16, 10, 4]
    assert sum(chunks, []) == sizes
    for chunk in chunks:  # closed as soon as it reaches the byte bound
        assert sum(map(len, chunk[:-1])) < batch_module._CHUNK_BYTES


class _FakeBatch:
    _chunk = batch_module._CHUNK_DOCS


def test_a_worker_sends_back_only_the_appended_bytes(cpki: CertomancerPki) -> None:
    # Runs the worker functions in this process: what _sign_chunk returns is what gets
    # pickled and piped to the parent.
    keys = functools.partial(Pkcs12KeySource, cpki.p12_path("signer-rsa2048"), None)
    large = make_pdf(padding_bytes=2 * 2**20)
    batch_module._init(SigningPolicy(), keys, (), 1)
    try:
        (sealed,) = batch_module._sign_chunk([large])
    finally:
        batch_module._worker["signer"].close()
        batch_module._worker.clear()

    assert len(pickle.dumps(sealed)) < 64 * 1024  # not the 2 MiB document again
    assert isinstance(sealed, batch_module._Sealed)
    signed = sealed.signed(large)
    assert signed.pdf.startswith(large)
    assert validate(signed.pdf, trust_roots=[cpki.root_der]).valid
