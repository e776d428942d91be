"""Signature upkeep stores a new AIP version: renew a B-T document against the certomancer
PKI (real TSA, OCSP and CRLs over loopback; nothing in pyHanko is mocked) on fs storage."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.mets import RootMets
from archive.model import PackageInput, SignatureInfo
from archive.package import build_aip
from archive.reader import read_root
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.errors import RenewalConflictError, RenewalRejectedError
from retention.upkeep import RENEWAL_EVENT_TYPE, VALIDATION_EVENT_TYPE, renew_document
from signing.keys import Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.upkeep import renew
from signing.validation import validate
from tests.support.eark import T0, make_input
from tests.support.pdfs import make_pdf
from tests.support.pki import CertomancerPki, running_pki


@pytest.fixture(scope="module")
def cpki() -> CertomancerPki:
    return running_pki()


@pytest.fixture(scope="module")
def signed_bt(cpki: CertomancerPki) -> tuple[bytes, PackageInput]:
    """A B-T sealed PDF (as ingest makes it) and the package input of its first version."""
    policy = SigningPolicy(level="B-T", tsa_url=cpki.tsa_url)
    source = Pkcs12KeySource(cpki.p12_path("signer-rsa2048"), None)
    with PadesSigner(policy, source) as signer:
        signed = signer.sign(make_pdf(["Besluit", "Gezegeld op B-T."]))
    inp = make_input(
        aip_id=str(uuid.uuid4()),
        signed_pdf=signed.pdf,
        signature=SignatureInfo(
            level=signed.level,
            signed_at=signed.signed_at,
            signer_subject=signed.signer_subject,
            certificate_sha256=signed.certificate_sha256,
        ),
    )
    return signed.pdf, inp


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AipStore]:
    storage = FsStorage(tmp_path / "store")
    yield AipStore(storage)
    storage.close()


def _root(store: AipStore, aip_id: str) -> RootMets:
    with store.open_file(aip_id, "METS.xml") as f:
        return read_root(aip_id, f.read())


def _pdf(store: AipStore, aip_id: str) -> bytes:
    with store.open_pdf(aip_id) as f:
        return f.read()


def test_renewal_is_stored_as_the_next_version(
    store: AipStore, cpki: CertomancerPki, signed_bt: tuple[bytes, PackageInput]
) -> None:
    old_pdf, inp = signed_bt
    first = store.commit(build_aip(inp))
    doc = inp.aip_id
    roots = [cpki.root_der]

    new_id = renew_document(
        store,
        doc,
        renew=lambda pdf: renew(pdf, trust_roots=roots, tsa_url=cpki.tsa_url),
        trust_roots=roots,
        clock=lambda: T0,
    )

    assert store.versions(doc) == [doc, new_id]
    assert store.resolve(doc) == new_id and store.document_of(new_id) == doc
    assert _root(store, new_id).previous_aip_id == doc
    new_pdf = _pdf(store, new_id)
    assert new_pdf.startswith(old_pdf) and len(new_pdf) > len(old_pdf)  # append-only
    report = validate(new_pdf, trust_roots=roots)
    assert report.valid, report.to_dict()
    assert len(report.document_timestamps) == 1
    assert report.document_timestamps[0].intact and report.document_timestamps[0].trusted

    # the first version is still there, byte for byte
    assert store.manifest(doc) == first
    assert hashlib.sha256(_pdf(store, doc)).hexdigest() == first.pdf.sha256
    assert store.verify(doc).ok and store.verify(new_id).ok

    renewed = store.manifest(new_id)
    assert renewed.metadata == first.metadata
    assert renewed.original_sha256 == first.original_sha256
    assert store.read_text(new_id) == store.read_text(doc)
    assert renewed.signature == dataclasses.replace(first.signature, level="B-LTA")
    assert renewed.events[: len(first.events)] == first.events
    added = [e.event_type for e in renewed.events[len(first.events) :]]
    assert added == [RENEWAL_EVENT_TYPE, VALIDATION_EVENT_TYPE]
    assert all(e.outcome == "success" for e in renewed.events[len(first.events) :])

    # renewing again builds on the newest version: a second document time-stamp
    third = renew_document(
        store,
        doc,
        renew=lambda pdf: renew(pdf, trust_roots=roots, tsa_url=cpki.tsa_url),
        trust_roots=roots,
    )
    assert store.versions(doc) == [doc, new_id, third]
    assert _pdf(store, third).startswith(new_pdf)
    assert len(validate(_pdf(store, third), trust_roots=roots).document_timestamps) == 2


def test_a_concurrent_renewal_that_won_is_reported(
    store: AipStore, cpki: CertomancerPki, signed_bt: tuple[bytes, PackageInput]
) -> None:
    _, inp = signed_bt
    store.commit(build_aip(inp))
    doc = inp.aip_id
    roots = [cpki.root_der]
    winner: list[str] = []

    def renew_while_another_wins(pdf: bytes) -> bytes:
        # the other writer renews and commits while this one is still renewing
        winner.append(
            renew_document(
                store,
                doc,
                renew=lambda p: renew(p, trust_roots=roots, tsa_url=cpki.tsa_url),
                trust_roots=roots,
            )
        )
        return renew(pdf, trust_roots=roots, tsa_url=cpki.tsa_url)

    with pytest.raises(RenewalConflictError) as caught:
        renew_document(store, doc, renew=renew_while_another_wins, trust_roots=roots)
    assert caught.value.document_id == doc and caught.value.based_on == doc
    assert store.versions(doc) == [doc, winner[0]]


def test_a_renewal_that_rewrites_or_does_not_validate_is_not_stored(
    store: AipStore, cpki: CertomancerPki, signed_bt: tuple[bytes, PackageInput]
) -> None:
    old_pdf, inp = signed_bt
    store.commit(build_aip(inp))
    doc = inp.aip_id
    with pytest.raises(RenewalRejectedError, match="incremental"):
        renew_document(store, doc, renew=lambda pdf: make_pdf(["other"]), trust_roots=[])
    with pytest.raises(RenewalRejectedError, match="validate"):  # untrusted roots
        renew_document(
            store,
            doc,
            renew=lambda pdf: pdf + b"\n%appended\n",
            trust_roots=[],
        )
    assert store.versions(doc) == [doc]
