"""reconcile_ingest: finish what a commit intent can finish, remove what holds nothing locked."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archive.model import BuiltPackage
from archive.package import build_aip
from archive.storage import fs as fs_module
from archive.storage.fs import FsStorage
from archive.store import AipStore
from ingest.idempotency import Claim, ClaimLedger
from ingest.reconcile import reconcile_ingest
from tests.support.eark import T0, make_input

GRACE = timedelta(minutes=10)
LATER = T0 + timedelta(hours=1)


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def fs(tmp_path: Path, clock: _Clock) -> FsStorage:
    return FsStorage(tmp_path / "store", clock=clock)


@pytest.fixture
def store(fs: FsStorage, clock: _Clock) -> AipStore:
    return AipStore(fs, clock=clock)


def _interrupted(
    store: AipStore,
    fs: FsStorage,
    monkeypatch: pytest.MonkeyPatch,
    retain_until: datetime | None,
) -> BuiltPackage:
    """A package whose commit was killed as it was about to write its root METS."""
    pkg = build_aip(make_input(aip_id=str(uuid.uuid4())))
    real_put_batches = fs.put_batches

    def killed(batches: Any, **kwargs: Any) -> None:
        before = [dataclasses.replace(b, redo=False) for b in batches if not b.exclusive]
        real_put_batches(before)  # all before the marker, as on S3 (see test_store.py)
        raise RuntimeError("killed before the commit marker")

    monkeypatch.setattr(fs, "put_batches", killed)
    with pytest.raises(RuntimeError):
        store.commit(pkg, retain_until=retain_until)
    monkeypatch.undo()
    return pkg


def _claim(ledger: ClaimLedger, pkg: BuiltPackage, ref: str) -> Claim:
    claim = Claim("OVO000001", ref, pkg.aip_id, "0" * 64, T0)
    ledger.create(claim)
    return claim


def test_claimed_interrupted_commits_are_finished_or_removed(
    store: AipStore, fs: FsStorage, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = ClaimLedger(fs)
    locked = _interrupted(store, fs, monkeypatch, T0 + timedelta(days=3650))
    unlocked = _interrupted(store, fs, monkeypatch, None)
    _claim(ledger, locked, "R-locked")
    _claim(ledger, unlocked, "R-unlocked")

    young = reconcile_ingest(store, ledger, grace=GRACE, clock=clock)
    assert (young.completed_packages, young.discarded_packages) == ((), ())

    report = reconcile_ingest(store, ledger, grace=GRACE, clock=lambda: LATER)
    assert report.completed_packages == (locked.aip_id,)
    assert report.discarded_packages == (unlocked.aip_id,)
    assert report.released_claims == (unlocked.aip_id,)
    assert store.verify(locked.aip_id).ok
    assert [c.agency_ref for c in ledger.claims()] == ["R-locked"]  # the retry gets a receipt
    assert list(store.incomplete()) == [] and list(store.commit_intents()) == []


def test_unclaimed_intents_wait_for_the_grace_period_then_finish(
    store: AipStore, fs: FsStorage, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = ClaimLedger(fs)
    pkg = _interrupted(store, fs, monkeypatch, T0 + timedelta(days=30))  # e.g. a new version
    young = reconcile_ingest(store, ledger, grace=GRACE, clock=clock)
    assert young.completed_packages == () and young.discarded_packages == ()
    assert list(store.incomplete()) == [pkg.aip_id]  # its writer may still be running
    report = reconcile_ingest(store, ledger, grace=GRACE, clock=lambda: LATER)
    assert report.completed_packages == (pkg.aip_id,)
    assert store.verify(pkg.aip_id).ok


def test_intents_past_their_retention_are_removed(
    store: AipStore, fs: FsStorage, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupted(store, fs, monkeypatch, T0 + timedelta(minutes=30))
    clock.now = T0 + timedelta(days=1)
    report = reconcile_ingest(store, ClaimLedger(fs), grace=GRACE, clock=clock)
    assert len(report.discarded_packages) == 1 and report.completed_packages == ()
    assert list(fs.keys("")) == []


def test_a_leftover_intent_of_a_committed_package_is_deleted(
    store: AipStore, fs: FsStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = build_aip(make_input(aip_id=str(uuid.uuid4())))
    real_put_batches = fs.put_batches

    def killed(batches: Any, **kwargs: Any) -> None:  # killed before deleting its intent
        real_put_batches([dataclasses.replace(b, redo=False) for b in batches])

    monkeypatch.setattr(fs, "put_batches", killed)
    store.commit(pkg, retain_until=T0 + timedelta(days=1))
    monkeypatch.undo()
    assert list(store.commit_intents()) == [pkg.aip_id]
    report = reconcile_ingest(store, ClaimLedger(fs), grace=GRACE, clock=lambda: LATER)
    assert report.completed_packages == () and report.discarded_packages == ()
    assert list(store.commit_intents()) == []
    assert store.verify(pkg.aip_id).ok


def test_an_intent_that_cannot_finish_is_reported_and_kept(
    store: AipStore, fs: FsStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = _interrupted(store, fs, monkeypatch, T0 + timedelta(days=30))
    damaged = b"KLUIS-COMMIT-INTENT 1\n{}\n"
    fs.put(
        f"commit-intents/{pkg.aip_id}",
        io.BytesIO(damaged),
        size=len(damaged),
        sha256=hashlib.sha256(damaged).hexdigest(),
    )
    report = reconcile_ingest(store, ClaimLedger(fs), grace=GRACE, clock=lambda: LATER)
    assert report.stuck_packages == (pkg.aip_id,)
    assert list(store.incomplete()) == [pkg.aip_id]  # locked files stay for an archivist


def test_the_staging_copy_of_a_killed_commit_is_removed_after_the_grace_period(
    tmp_path: Path,
) -> None:
    """A commit killed (no ``finally`` runs) between writing its hidden staging directory
    and renaming it into place leaves bytes no key names; reconcile removes them once they
    are older than the grace period, and the retry then commits."""
    root = tmp_path / "store"
    pkg = build_aip(make_input(aip_id=str(uuid.uuid4())))
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which never returns
        try:
            fs_module._rename_noreplace = lambda *_args: os._exit(0)  # killed right there
            AipStore(FsStorage(root)).commit(pkg, retain_until=None)
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child was not stopped at the rename"
    fs = FsStorage(root)
    store = AipStore(fs)
    staged = [p.name for p in (root / "aips").iterdir()]
    assert len(staged) == 1 and staged[0].startswith(".") and staged[0].endswith(".tmp")
    assert list(fs.keys("")) == [] and list(store.incomplete()) == []

    def now() -> datetime:
        return datetime.now(UTC)

    young = reconcile_ingest(store, ClaimLedger(fs), grace=GRACE, clock=now)
    assert young.removed_leftovers == 0  # its writer could still be running
    assert [p.name for p in (root / "aips").iterdir()] == staged

    report = reconcile_ingest(store, ClaimLedger(fs), grace=GRACE, clock=lambda: now() + GRACE)
    assert report.removed_leftovers == 1
    assert list((root / "aips").iterdir()) == []
    store.commit(pkg, retain_until=None)
    assert store.verify(pkg.aip_id).ok


def test_leftovers_are_only_hidden_temp_names_and_need_an_aware_time(tmp_path: Path) -> None:
    fs = FsStorage(tmp_path / "store")
    fs.put("aips/a/x", io.BytesIO(b"kept"), size=4, sha256=hashlib.sha256(b"kept").hexdigest())
    (tmp_path / "store" / "aips" / ".x.0123456789abcdef.tmp").write_bytes(b"half")
    (tmp_path / "store" / "aips" / ".not-ours").write_bytes(b"someone else's")
    later = datetime.now(UTC) + timedelta(hours=1)
    assert fs.remove_leftovers("aips/", later) == 1
    assert sorted(p.name for p in (tmp_path / "store" / "aips").iterdir()) == [".not-ours", "a"]
    assert fs.remove_leftovers("nothing-here/", later) == 0
    with pytest.raises(ValueError):
        fs.remove_leftovers("aips", later)
    with pytest.raises(ValueError):
        fs.remove_leftovers("aips/", datetime(2030, 1, 1))  # naive on purpose
