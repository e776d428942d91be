"""Disposal end to end on real storage (fs with an injected clock, and the real Ceph RGW with
COMPLIANCE object lock): sweep, four eyes, execution against storage, tombstones, the signed
certificate (checked with our verifier and with ``openssl cms -verify``).

On S3 the lock follows real time: documents due there were committed with an end in the
past (the store keeps no lock for them), documents not due carry a real future lock."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from archive import layout
from archive.destruction import destroy_document, read_tombstone
from archive.errors import ObjectLockedError
from archive.events import EventLog
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from retention.disposal_errors import FourEyesError, ProposalStateError
from retention.holds import HoldRegistry
from signing.devpki import DevPki, ensure_dev_pki
from tests.support.disposal_world import World, make_world
from tests.support.retention_docs import Clock, selection
from tests.support.s3 import s3_server

OWNER = "85073003328"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_dev_pki(tmp_path_factory.mktemp("disposal-pki") / "dev-pki")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Storage]:
    if request.param == "fs":
        fs = FsStorage(tmp_path / "store", clock=clock)
        yield fs
        fs.close()
    else:
        clock.set(date.today())  # S3 locks follow real time
        s3 = s3_server().storage()
        yield s3
        s3.close()


@pytest.fixture
def world(storage: Storage, clock: Clock, tmp_path: Path, pki: DevPki) -> Iterator[World]:
    built = make_world(storage, clock, tmp_path / "index", pki, selection())
    yield built
    built.close()


def _ago(clock: Clock, years: int, days: int = 0) -> date:
    today = clock().date()
    return date(today.year - years, today.month, min(today.day, 28)) - timedelta(days=days)


def _keys_of(storage: Storage, doc: str) -> list[str]:
    found = []
    for prefix in (f"aips/{doc}/", f"events/{doc}/", f"versions/{doc}/", f"retention/{doc}/"):
        found += list(storage.keys(prefix))
    return found


def _approved(world: World) -> str:
    result = world.disposal.sweep("kluis")
    assert result.proposal is not None
    pid = result.proposal.proposal_id
    world.disposal.review(pid, "archivist-anna")
    world.disposal.approve(pid, "archivist-bart")
    return pid


def test_sweep_proposes_only_what_storage_says_is_due(world: World) -> None:
    due = world.add("attest", _ago(world.clock, 11))
    transfer = world.add("besluit", _ago(world.clock, 31))
    world.add("attest", _ago(world.clock, 2))  # not due for 8 years
    world.add("diploma", _ago(world.clock, 40))  # kept permanently
    held = world.add("attest", _ago(world.clock, 12))
    HoldRegistry(world.storage, world.store, EventLog(world.storage), clock=world.clock,
                 index_updater=world.updater).place(
        reason="rechtszaak", mandate="art. 5", placed_by="archivist-anna",
        document_ids=[held.aip_id])  # fmt: skip
    world.index.refresh()

    result = world.disposal.sweep("kluis")
    assert result.proposal is not None
    items = {i.document_id: i for i in world.disposal.items(result.proposal.proposal_id)}
    assert set(items) == {due.aip_id, transfer.aip_id}
    assert items[due.aip_id].action == "destroy"
    assert items[transfer.aip_id].action == "transfer"
    assert items[due.aip_id].list_version == "t-1"
    assert result.proposal.counts == {"attest:destroy": 1, "besluit:transfer": 1}
    # Already in an open proposal: not proposed twice.
    again = world.disposal.sweep("kluis")
    assert again.proposal is None and again.already_proposed == 2
    events = world.disposal.proposals.events(result.proposal.proposal_id)
    assert [e.event_type for e in events] == ["appraisal"]


def test_four_eyes_cannot_be_bypassed_by_one_archivist(world: World) -> None:
    world.add("attest", _ago(world.clock, 11))
    proposal = world.disposal.sweep("kluis").proposal
    assert proposal is not None
    pid = proposal.proposal_id
    d = world.disposal
    with pytest.raises(ProposalStateError):
        d.approve(pid, "anna")  # approve before review
    with pytest.raises(ProposalStateError):
        d.execute(pid, "anna")  # execute before approval
    d.review(pid, "anna")
    with pytest.raises(ProposalStateError):
        d.review(pid, "anna")  # a second review
    with pytest.raises(ProposalStateError):
        d.review(pid, "bart")  # nor by someone else
    with pytest.raises(FourEyesError):
        d.approve(pid, "anna")  # the reviewer cannot approve
    with pytest.raises(ProposalStateError):
        d.execute(pid, "anna")
    d.approve(pid, "bart")
    with pytest.raises(ProposalStateError):
        d.approve(pid, "carla")  # decided
    with pytest.raises(ProposalStateError):
        d.reject(pid, "carla")
    assert d.status(pid).state == "approved"
    types = [e.event_type for e in d.proposals.events(pid)]
    assert types == ["appraisal", "appraisal", "appraisal"]


def test_racing_requests_of_one_archivist_never_take_both_steps(world: World) -> None:
    world.add("attest", _ago(world.clock, 11))
    for _ in range(5):
        proposal = world.disposal.sweep("kluis").proposal
        assert proposal is not None
        pid = proposal.proposal_id
        outcomes: list[str] = []
        barrier = threading.Barrier(4)

        def attempt(step: str, who: str, pid: str = pid, barrier: threading.Barrier = barrier,
                    outcomes: list[str] = outcomes) -> None:  # fmt: skip
            barrier.wait()
            try:
                getattr(world.disposal, step)(pid, who)
                outcomes.append(f"{step}:{who}")
            except (ProposalStateError, FourEyesError):
                pass

        threads = [
            threading.Thread(target=attempt, args=(step, "anna"))
            for step in ("review", "approve", "review", "approve")
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status = world.disposal.status(pid)
        assert status.decision is None, outcomes  # anna alone can never approve
        assert outcomes == ["review:anna"]
        world.disposal.reject(pid, "bart")  # frees the item for the next round


def test_execution_destroys_every_version_and_signs_a_certificate(
    world: World, pki: DevPki, tmp_path: Path
) -> None:
    due = world.add("attest", _ago(world.clock, 11))
    transfer = world.add("besluit", _ago(world.clock, 31))
    keep = world.add("attest", _ago(world.clock, 1))
    pid = _approved(world)

    result = world.disposal.execute(pid, "archivist-carla")
    assert (result.destroyed, result.transferred, result.skipped) == (1, 1, 0)
    world.index.refresh()
    for doc in (due.aip_id, transfer.aip_id):
        assert not world.store.is_committed(doc)
        assert _keys_of(world.storage, doc) == []
        tomb = read_tombstone(world.storage, doc)
        assert tomb is not None and tomb.proposal_id == pid
        assert tomb.certificate_id == result.certificate_id
        assert world.index.get(doc) is None
    assert world.store.is_committed(keep.aip_id)
    assert world.index.get(keep.aip_id) is not None

    export_key = f"exports/{pid}/{transfer.aip_id}.tar"
    with (
        world.storage.open(export_key) as stream,
        tarfile.open(fileobj=io.BytesIO(stream.read())) as tar,
    ):
        names = tar.getnames()
    assert f"{transfer.aip_id}/{transfer.aip_id}/METS.xml" in names
    assert any(n.endswith(".pdf") for n in names)

    cert = world.disposal.certificate(result.certificate_id)
    content = cert.content
    assert {r["document_id"] for r in content["disposed"]} == {due.aip_id, transfer.aip_id}
    assert content["review"]["archivist"] == "archivist-anna"
    assert content["approval"]["archivist"] == "archivist-bart"
    assert content["execution"]["executor"] == "archivist-carla"
    assert content["list_versions"] == ["t-1"]
    row = next(r for r in content["disposed"] if r["document_id"] == due.aip_id)
    assert row["action"] == "destroy" and row["document_type"] == "attest"
    assert len(row["manifest_sha256"]) == 64
    # No personal data: no owner number, no title, no agency reference.
    text = cert.document.decode()
    assert OWNER not in text and "vergunning" not in text and "REF-" not in text
    check = world.disposal.verify(cert)
    assert check.ok, check
    for key in (f"certificates/{result.certificate_id}.json",
                f"certificates/{result.certificate_id}.p7s"):  # fmt: skip
        assert world.storage.stat(key).legal_hold
        with pytest.raises(ObjectLockedError):
            world.storage.delete(key)
    _openssl_verify(cert.document, cert.signature, pki.trust_roots(), tmp_path)

    # Idempotent: executing again does nothing and returns the same result.
    assert world.disposal.execute(pid, "archivist-carla") == result
    assert world.disposal.status(pid).state == "executed"
    types = sorted(e.event_type for e in world.disposal.proposals.events(pid))
    assert types == ["appraisal"] * 3 + ["deletion", "digital signature generation", "transfer"]


def _openssl_verify(data: bytes, signature: bytes, roots: tuple[bytes, ...], tmp: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to check certificates independently")
    (tmp / "cert.json").write_bytes(data)
    (tmp / "cert.p7s").write_bytes(signature)
    pem = b"".join(
        x509.load_der_x509_certificate(r).public_bytes(serialization.Encoding.PEM) for r in roots
    )
    (tmp / "roots.pem").write_bytes(pem)
    ok = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "cert.p7s"),
         "-content", str(tmp / "cert.json"), "-CAfile", str(tmp / "roots.pem"),
         "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    (tmp / "cert.json").write_bytes(data.replace(b"destroy", b"destroY", 1))
    bad = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "cert.p7s"),
         "-content", str(tmp / "cert.json"), "-CAfile", str(tmp / "roots.pem"),
         "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0


def test_execution_rechecks_every_item_against_storage(world: World) -> None:
    a = world.add("attest", _ago(world.clock, 11))
    b = world.add("attest", _ago(world.clock, 11, days=3))
    pid = _approved(world)
    # After approval, a hold is placed on a; the index is not told (it must not matter).
    HoldRegistry(world.storage, world.store, EventLog(world.storage), clock=world.clock).place(
        reason="onderzoek", mandate="art. 7", placed_by="anna", document_ids=[a.aip_id]
    )
    result = world.disposal.execute(pid, "carla")
    assert (result.destroyed, result.skipped) == (1, 1)
    assert world.store.is_committed(a.aip_id)
    assert read_tombstone(world.storage, a.aip_id) is None
    assert not world.store.is_committed(b.aip_id)
    skipped = world.disposal.certificate(result.certificate_id).content["skipped"]
    assert skipped[0]["document_id"] == a.aip_id and "hold" in skipped[0]["reason"]


def test_storage_refuses_to_delete_before_time_or_while_held(world: World) -> None:
    young = world.add("attest", _ago(world.clock, 1))
    with pytest.raises(ObjectLockedError):
        destroy_document(world.storage, young.aip_id, clock=world.clock)
    with pytest.raises(ObjectLockedError):
        world.storage.delete(layout.aip_key(young.aip_id, layout.ROOT_METS))
    assert world.store.is_committed(young.aip_id)
    assert world.store.verify(young.aip_id).ok

    old = world.add("attest", _ago(world.clock, 11))
    world.store.set_document_legal_hold(old.aip_id, True)
    with pytest.raises(ObjectLockedError):
        destroy_document(world.storage, old.aip_id, clock=world.clock)
    assert world.store.verify(old.aip_id).ok


def test_a_newer_list_that_keeps_the_type_stops_execution(world: World) -> None:
    doc = world.add("attest", _ago(world.clock, 11))
    pid = _approved(world)
    world.records.recompute(selection("t-2", attest={"action": "keep"}))
    result = world.disposal.execute(pid, "carla")
    assert (result.destroyed, result.skipped) == (0, 1)
    assert world.store.is_committed(doc.aip_id)
    skipped = world.disposal.certificate(result.certificate_id).content["skipped"]
    assert "keep" in skipped[0]["reason"]


def test_certificate_holds_no_personal_data_even_for_many_versions(world: World) -> None:
    doc = world.add("attest", _ago(world.clock, 11))
    pid = _approved(world)
    result = world.disposal.execute(pid, "carla")
    content = json.loads(world.disposal.certificate(result.certificate_id).document)
    allowed = {"document_id", "document_type", "list_version", "retention_until",
               "manifest_sha256", "versions", "disposed_at", "action"}  # fmt: skip
    assert set(content["disposed"][0]) <= allowed
    assert content["disposed"][0]["document_id"] == doc.aip_id


def test_certificate_carries_a_signature_time_stamp_from_the_tsa(
    tmp_path: Path, clock: Clock, pki: DevPki
) -> None:
    from signing.keys import Pkcs12KeySource
    from tests.support.pki import running_pki

    cpki = running_pki()
    storage = FsStorage(tmp_path / "store", clock=clock)
    world = make_world(
        storage, clock, tmp_path / "index", pki, selection(),
        tsa_url=cpki.tsa_url, trust_roots=[cpki.root_der],
        keys=Pkcs12KeySource(cpki.p12_path("signer-rsa2048"), None),
    )  # fmt: skip
    try:
        world.add("attest", _ago(clock, 11))
        result = world.disposal.execute(_approved(world), "carla")
        cert = world.disposal.certificate(result.certificate_id)
        check = world.disposal.verify(cert)
        assert check.ok and check.timestamped_at is not None
        _openssl_verify(cert.document, cert.signature, (cpki.root_der,), tmp_path)
    finally:
        world.close()


def test_index_only_sweep_is_confirmed_by_storage_at_execution(world: World) -> None:
    due = world.add("attest", _ago(world.clock, 11))
    held = world.add("besluit", _ago(world.clock, 31))
    # Held in storage, but the index is not told: it still lists the document as due.
    HoldRegistry(world.storage, world.store, EventLog(world.storage), clock=world.clock).place(
        reason="onderzoek", mandate="art. 7", placed_by="anna", document_ids=[held.aip_id]
    )
    result = world.disposal.sweep("kluis", confirm=False)
    assert result.proposal is not None
    assert result.proposal.counts == {"unconfirmed": 2}
    items = list(world.disposal.items(result.proposal.proposal_id))
    assert {i.document_id for i in items} == {due.aip_id, held.aip_id}
    assert not any(i.confirmed for i in items)
    pid = result.proposal.proposal_id
    world.disposal.review(pid, "anna")
    world.disposal.approve(pid, "bart")
    done = world.disposal.execute(pid, "carla")
    assert (done.destroyed, done.transferred, done.skipped) == (1, 0, 1)
    assert world.store.is_committed(held.aip_id)
    row = world.disposal.certificate(done.certificate_id).content["disposed"][0]
    assert (row["document_id"], row["document_type"], row["action"]) == (
        due.aip_id,
        "attest",
        "destroy",
    )


def test_every_version_is_exported_then_destroyed(world: World) -> None:
    import dataclasses
    import uuid

    from archive.package import build_aip

    doc = world.add("besluit", _ago(world.clock, 31))
    version2 = dataclasses.replace(doc, aip_id=str(uuid.uuid4()), previous_aip_id=doc.aip_id)
    world.store.commit_version(build_aip(version2))
    version3 = dataclasses.replace(doc, aip_id=str(uuid.uuid4()), previous_aip_id=version2.aip_id)
    world.store.commit_version(build_aip(version3))
    assert world.store.versions(doc.aip_id) == [doc.aip_id, version2.aip_id, version3.aip_id]
    pid = _approved(world)
    result = world.disposal.execute(pid, "carla")
    assert result.transferred == 1
    for aip_id in (doc.aip_id, version2.aip_id, version3.aip_id):
        assert list(world.storage.keys(f"aips/{aip_id}/")) == []
    assert list(world.storage.keys(f"versions/{doc.aip_id}/")) == []
    row = world.disposal.certificate(result.certificate_id).content["disposed"][0]
    assert [v["aip_id"] for v in row["versions"]] == [doc.aip_id, version2.aip_id, version3.aip_id]
    assert row["manifest_sha256"] == row["versions"][-1]["root_mets_sha256"]
    with (
        world.storage.open(f"exports/{pid}/{doc.aip_id}.tar") as stream,
        tarfile.open(fileobj=io.BytesIO(stream.read())) as tar,
    ):
        roots = [n for n in tar.getnames() if n.endswith("/METS.xml") and n.count("/") == 2]
    assert roots == [f"{doc.aip_id}/{a}/METS.xml"
                     for a in (doc.aip_id, version2.aip_id, version3.aip_id)]  # fmt: skip


def test_an_interrupted_sweep_leaves_no_visible_proposal(world: World) -> None:
    from collections.abc import Iterator as It

    from retention.proposals import ProposalItem

    docs = [world.add("attest", _ago(world.clock, 11, days=i)).aip_id for i in range(5)]

    def dying() -> It[ProposalItem]:
        for doc in docs[:4]:
            yield ProposalItem(doc)
        raise KeyboardInterrupt  # the sweep's process stops after two chunks

    with pytest.raises(KeyboardInterrupt):
        world.disposal.proposals.create(
            "interrupted", created_at=world.clock(), proposed_by="kluis",
            due_before=world.clock().date(), items=dying(),
        )  # fmt: skip
    assert list(world.storage.keys("disposal/proposals/interrupted/"))  # chunks were written
    assert list(world.disposal.proposals.ids()) == []
    proposal = world.disposal.sweep("kluis").proposal
    assert proposal is not None and proposal.item_count == 5


def test_state_gives_the_versions_and_manifest_hashes_it_read(world: World) -> None:
    import dataclasses
    import uuid

    from archive.destruction import root_mets_sha256
    from archive.package import build_aip

    doc = world.add("attest", _ago(world.clock, 11))
    newer = dataclasses.replace(doc, aip_id=str(uuid.uuid4()), previous_aip_id=doc.aip_id)
    world.store.commit_version(build_aip(newer))
    state = world.records.state(doc.aip_id)
    assert state.versions == (doc.aip_id, newer.aip_id)
    assert state.root_mets_sha256 == tuple(
        root_mets_sha256(world.storage, a) for a in (doc.aip_id, newer.aip_id)
    )
    assert state.root_mets_sha256[0] != state.root_mets_sha256[1]
    # A retention record (no baseline read of the package metadata) gives them too.
    world.records.recompute(selection("t-2"))
    assert world.records.state(doc.aip_id).root_mets_sha256 == state.root_mets_sha256


def test_batches_in_flight_two_at_a_time_certify_every_document_once(world: World) -> None:
    docs = {world.add("attest", _ago(world.clock, 11, days=i)).aip_id for i in range(7)}
    pid = _approved(world)
    seen: list[int] = []
    result = world.disposal.execute(pid, "carla", batch_items=2, progress=seen.append)
    assert (result.destroyed, result.skipped) == (7, 0)
    assert sum(seen) == 7 and len(seen) == 4
    for n in range(4):
        assert world.disposal.proposals.read_record(pid, f"journal/{n:06d}.done.json")
    disposed = world.disposal.certificate(result.certificate_id).content["disposed"]
    assert sorted(r["document_id"] for r in disposed) == sorted(docs)
    for doc in docs:
        assert _keys_of(world.storage, doc) == []
        assert read_tombstone(world.storage, doc) is not None


def test_a_hold_placed_after_the_tombstones_keeps_its_document(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last look happens right before the deletion, after the batch's tombstones are
    written (and while the batch before may still be deleted): the hold wins, the
    tombstone goes again."""
    import retention.execution as execution

    docs = [world.add("attest", _ago(world.clock, 11, days=i)).aip_id for i in range(4)]
    target = docs[3]
    pid = _approved(world)
    original = execution._tombstones

    def then_hold(ctx: object, prepared: list[dict[str, object]]) -> list[dict[str, object]]:
        written = original(ctx, prepared)  # type: ignore[arg-type]
        if any(e["document_id"] == target for e in prepared):
            assert read_tombstone(world.storage, target) is not None
            holds = HoldRegistry(world.storage, world.store, EventLog(world.storage),
                                 clock=world.clock)  # fmt: skip
            holds.place(reason="onderzoek", mandate="art. 7", placed_by="anna",
                        document_ids=[target])  # fmt: skip
        return written

    monkeypatch.setattr(execution, "_tombstones", then_hold)
    result = world.disposal.execute(pid, "carla", batch_items=2)
    assert (result.destroyed, result.skipped) == (3, 1)
    assert world.store.verify(target).ok
    assert read_tombstone(world.storage, target) is None
    skipped = world.disposal.certificate(result.certificate_id).content["skipped"]
    assert skipped == [{"document_id": target, "reason": skipped[0]["reason"]}]
    assert "hold" in skipped[0]["reason"]


def test_delete_many_over_many_subtrees_checks_every_lock_first(
    storage: Storage, clock: Clock
) -> None:
    """fs removes subtrees on many threads at once: a lock in any of them still refuses
    the whole call before anything is removed."""
    import hashlib

    from archive.storage.base import NewObject

    keys = [f"t/{i:03d}/{p}" for i in range(40) for p in ("a", "b/c", "b/d/e")]
    objects = [NewObject(k, k.encode(), hashlib.sha256(k.encode()).hexdigest()) for k in keys]
    storage.put_new(objects)
    locked = "t/039/b/d/e"
    storage.set_legal_hold(locked, True)
    with pytest.raises(ObjectLockedError):
        storage.delete_many(keys)
    assert list(storage.keys("t/")) == sorted(keys)
    storage.set_legal_hold(locked, False)
    assert storage.delete_many([*keys, "t/999/missing"]) == len(keys)
    assert list(storage.keys("t/")) == []
    if isinstance(storage, FsStorage):
        assert not (storage.root / "t" / "000").exists()  # emptied directories are gone
