"""The signature upkeep job against the certomancer PKI (real TSA, OCSP and CRLs over
loopback): a settled B-T document is augmented to B-LTA as a new version, a young one is left
alone, evidence inside the horizon is renewed, and the job resumes at its checkpoint."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from archive.leases import Leases
from archive.model import PackageInput, SignatureInfo
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.jobs import Checkpoint, UpkeepPolicy, UpkeepReport, signature_upkeep
from signing.keys import Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.upkeep import augment, renew
from signing.validation import validate
from tests.support.eark import T0, make_input
from tests.support.pdfs import make_pdf
from tests.support.pki import CertomancerPki, running_pki

pytestmark = pytest.mark.integration
TTL = timedelta(minutes=5)


@pytest.fixture(scope="module")
def cpki() -> CertomancerPki:
    return running_pki()


@pytest.fixture(scope="module")
def sealed_bt(cpki: CertomancerPki) -> tuple[bytes, SignatureInfo]:
    policy = SigningPolicy(level="B-T", tsa_url=cpki.tsa_url)
    source = Pkcs12KeySource(cpki.p12_path("signer-rsa2048"), None)
    with PadesSigner(policy, source) as signer:
        signed = signer.sign(make_pdf(["Besluit", "Gezegeld op B-T."]))
    return signed.pdf, SignatureInfo(
        level=signed.level,
        signed_at=signed.signed_at,
        signer_subject=signed.signer_subject,
        certificate_sha256=signed.certificate_sha256,
    )


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[FsStorage]:
    storage = FsStorage(tmp_path / "store")
    yield storage
    storage.close()


def _commit(store: AipStore, sealed: tuple[bytes, SignatureInfo], created: datetime) -> str:
    pdf, signature = sealed
    inp: PackageInput = make_input(
        aip_id=str(uuid.uuid4()), signed_pdf=pdf, signature=signature, created_at=created
    )
    store.commit(build_aip(inp))
    return inp.aip_id


def _run(
    fs: FsStorage, cpki: CertomancerPki, now: datetime, *, horizon_days: int, batch: int = 10
) -> UpkeepReport:
    roots = [cpki.root_der]
    with Leases(fs, holder="upkeep-test").acquire("upkeep", TTL) as lease:
        return signature_upkeep(
            AipStore(fs),
            fs,
            lease,
            renew=lambda pdf: renew(pdf, trust_roots=roots, tsa_url=cpki.tsa_url),
            augment=lambda pdf: augment(pdf, trust_roots=roots, tsa_url=cpki.tsa_url),
            trust_roots=roots,
            policy=UpkeepPolicy(
                horizon=timedelta(days=horizon_days), settle=timedelta(days=1), batch=batch
            ),
            clock=lambda: now,
        )


def test_settled_bt_is_augmented_young_bt_waits_and_due_evidence_is_renewed(
    fs: FsStorage, cpki: CertomancerPki, sealed_bt: tuple[bytes, SignatureInfo]
) -> None:
    store = AipStore(fs)
    old = _commit(store, sealed_bt, T0)
    young = _commit(store, sealed_bt, T0 + timedelta(days=2))
    now = T0 + timedelta(days=2, hours=1)

    first = _run(fs, cpki, now, horizon_days=180)
    assert first.examined == 2 and first.failed == () and first.renewed == ()
    assert [doc for doc, _ in first.augmented] == [old]
    new_aip = dict(first.augmented)[old]
    assert store.resolve(old) == new_aip and store.resolve(young) == young
    assert store.manifest(new_aip).signature.level == "B-LTA"
    with store.open_pdf(new_aip) as stream:
        report = validate(stream.read(), trust_roots=[cpki.root_der])
    assert report.valid and len(report.document_timestamps) == 1
    assert first.cursor is None  # the whole archive was examined
    assert Checkpoint(fs, "upkeep").read() == {"after": None}

    # Nothing expires within 180 days of now: a second run changes nothing.
    second = _run(fs, cpki, now, horizon_days=180)
    assert second.augmented == second.renewed == ()
    assert store.versions(old) == [old, new_aip]

    # With a horizon past the TSA certificate's end (2035), the B-LTA document is renewed;
    # the young B-T one (not settled at `now`) too: renew() raises it to B-LTA.
    third = _run(fs, cpki, now, horizon_days=365 * 30)
    assert sorted(doc for doc, _ in third.renewed) == sorted([old, young])
    renewed = dict(third.renewed)[old]
    assert store.versions(old) == [old, new_aip, renewed]
    with store.open_pdf(renewed) as stream:
        assert len(validate(stream.read(), trust_roots=[cpki.root_der]).document_timestamps) == 2


def test_a_run_examines_one_batch_and_the_next_resumes_after_it(
    fs: FsStorage, cpki: CertomancerPki, sealed_bt: tuple[bytes, SignatureInfo]
) -> None:
    store = AipStore(fs)
    docs = sorted(_commit(store, sealed_bt, T0 + timedelta(days=9)) for _ in range(3))
    now = T0 + timedelta(days=9, hours=1)  # none settled, none due: examined only
    first = _run(fs, cpki, now, horizon_days=30, batch=2)
    assert first.examined == 2 and first.cursor == docs[1]
    second = _run(fs, cpki, now, horizon_days=30, batch=2)
    assert second.examined == 2 and second.cursor == docs[0]  # docs[2], then wraps to docs[0]
    assert second.augmented == second.renewed == second.failed == ()
