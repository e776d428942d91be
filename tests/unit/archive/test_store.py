"""AipStore: commit protocol (root METS last), visibility, listing, reading and fixity."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from archive.errors import (
    IntegrityError,
    InvalidPackageError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
    PackageCommittedError,
    PackageNotFoundError,
)
from archive.model import BuiltPackage, PackageInput
from archive.package import build_aip
from archive.storage.base import NewBatch
from archive.storage.fs import FsStorage
from archive.store import AipStore
from tests.support.eark import make_input
from tests.unit.archive.conftest import Clock

OTHER_ID = "0b7d1f0e-3c2a-4e59-9d84-1a2b3c4d5e6f"


def _kill_before_marker(fs: FsStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next commit is killed right before its root METS (the commit marker): every batch
    before the marker's is stored, then the process "dies". (fs makes a fresh package's files
    and marker appear with one rename, without its intent; the state made here is that of S3,
    or of fs when that rename is impossible.)"""
    real = fs.put_batches

    def killed(batches: Sequence[NewBatch], **kwargs: Any) -> None:
        real([dataclasses.replace(b, redo=False) for b in batches if not b.exclusive])
        raise RuntimeError("process killed before the commit marker")

    monkeypatch.setattr(fs, "put_batches", killed)


def _write_all_but_root(fs: FsStorage, pkg: BuiltPackage) -> None:
    for path, data in pkg.files.items():
        fs.put(
            f"aips/{pkg.aip_id}/{path}",
            io.BytesIO(data),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )


def test_commit_then_read_back(store: AipStore, pkg: BuiltPackage, inp: PackageInput) -> None:
    committed = store.commit(pkg)
    assert store.manifest(inp.aip_id) == committed
    manifest = store.manifest(inp.aip_id)
    assert manifest.metadata == inp.metadata
    assert manifest.events == inp.events
    assert manifest.signature == inp.signature
    with store.open_pdf(inp.aip_id) as handle:
        assert handle.read() == inp.signed_pdf
    assert store.read_text(inp.aip_id) == inp.text
    with store.open_file(inp.aip_id, "METS.xml") as handle:
        assert handle.read() == pkg.root_mets
    assert list(store.aip_ids()) == [inp.aip_id]
    assert store.is_committed(inp.aip_id)


def test_keys_are_exactly_aips_id_path(store: AipStore, fs: FsStorage, pkg: BuiltPackage) -> None:
    store.commit(pkg)
    expected = sorted(
        [f"aips/{pkg.aip_id}/{p}" for p in pkg.files] + [f"aips/{pkg.aip_id}/METS.xml"]
    )
    assert list(fs.keys("")) == expected


def test_second_commit_fails_and_overwrites_nothing(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, inp: PackageInput
) -> None:
    store.commit(pkg)
    before = {k: fs.stat(k).sha256 for k in fs.keys("")}
    changed = build_aip(dataclasses.replace(inp, text="other text"))
    with pytest.raises(ObjectExistsError):
        store.commit(changed)
    assert {k: fs.stat(k).sha256 for k in fs.keys("")} == before


def test_package_is_invisible_until_the_root_mets_exists(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage
) -> None:
    _write_all_but_root(fs, pkg)
    assert not store.is_committed(pkg.aip_id)
    assert list(store.aip_ids()) == []
    assert list(store.incomplete()) == [pkg.aip_id]
    with pytest.raises(PackageNotFoundError):
        store.manifest(pkg.aip_id)
    with pytest.raises(PackageNotFoundError):
        store.open_pdf(pkg.aip_id)
    # Retrying the commit after the interruption completes it (identical leftovers are fine).
    store.commit(pkg)
    assert list(store.incomplete()) == []


def test_leftovers_with_other_bytes_block_a_commit(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, inp: PackageInput
) -> None:
    _write_all_but_root(fs, build_aip(dataclasses.replace(inp, text="earlier attempt")))
    with pytest.raises(ObjectExistsError):
        store.commit(pkg)
    assert store.discard_incomplete(pkg.aip_id) == len(pkg.files)
    store.commit(pkg)
    assert store.read_text(pkg.aip_id) == inp.text


def test_discard_refuses_a_committed_package(store: AipStore, pkg: BuiltPackage) -> None:
    store.commit(pkg)
    with pytest.raises(PackageCommittedError):
        store.discard_incomplete(pkg.aip_id)
    assert store.is_committed(pkg.aip_id)


def test_incomplete_lists_only_uncommitted_ids(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage
) -> None:
    store.commit(pkg)
    _write_all_but_root(fs, build_aip(make_input(aip_id=OTHER_ID)))
    assert list(store.incomplete()) == [OTHER_ID]
    assert list(store.aip_ids()) == [pkg.aip_id]


def test_retention_applies_to_every_object(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, clock: Clock
) -> None:
    until = clock.now + timedelta(days=30)
    store.commit(pkg, retain_until=until)
    assert {fs.stat(k).retain_until for k in fs.keys("")} == {until}
    with pytest.raises(ObjectLockedError):
        fs.delete(f"aips/{pkg.aip_id}/METS.xml")


def test_verify_reports_ok_mismatch_and_missing(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, clock: Clock
) -> None:
    store.commit(pkg)
    report = store.verify(pkg.aip_id)
    assert report.ok and report.checked_at == clock.now
    assert {c.path for c in report.files} == set(pkg.files)

    pdf = f"aips/{pkg.aip_id}/representations/rep1/data/document.pdf"
    (fs.root / pdf).write_bytes(b"%PDF-1.7 bit rot")
    fs.delete(f"aips/{pkg.aip_id}/schemas/xlink.xsd")
    report = store.verify(pkg.aip_id)
    assert not report.ok
    problems = {c.path: c.status for c in report.problems}
    assert problems == {
        "representations/rep1/data/document.pdf": "mismatch",
        "schemas/xlink.xsd": "missing",
    }


def test_reading_checks_integrity(store: AipStore, fs: FsStorage, pkg: BuiltPackage) -> None:
    store.commit(pkg)
    (fs.root / f"aips/{pkg.aip_id}/representations/rep2/data/document.txt").write_bytes(b"forged")
    with pytest.raises(IntegrityError):
        store.read_text(pkg.aip_id)
    (fs.root / f"aips/{pkg.aip_id}/metadata/descriptive/dc.xml").write_bytes(b"<forged/>")
    with pytest.raises(IntegrityError):
        store.manifest(pkg.aip_id)


def test_open_file_only_serves_listed_files(store: AipStore, pkg: BuiltPackage) -> None:
    store.commit(pkg)
    with pytest.raises(ObjectNotFoundError):
        store.open_file(pkg.aip_id, "representations/rep1/data/other.pdf")
    with store.open_file(pkg.aip_id, "metadata/preservation/premis.xml") as handle:
        assert handle.read() == pkg.files["metadata/preservation/premis.xml"]


def test_inconsistent_package_is_refused_before_any_write(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage
) -> None:
    files = dict(pkg.files)
    files["representations/rep1/data/document.pdf"] = b"swapped"
    with pytest.raises(InvalidPackageError):
        store.commit(BuiltPackage(pkg.aip_id, files, pkg.root_mets))
    extra = {**pkg.files, "documentation/x.txt": b"x"}
    with pytest.raises(InvalidPackageError):
        store.commit(BuiltPackage(pkg.aip_id, extra, pkg.root_mets))
    assert list(fs.keys("")) == []


def test_unknown_package(store: AipStore) -> None:
    with pytest.raises(PackageNotFoundError):
        store.manifest(OTHER_ID)
    with pytest.raises(PackageNotFoundError):
        store.verify(OTHER_ID)
    assert not store.is_committed(OTHER_ID)


def test_interrupted_commit_with_retention_is_completed_not_discarded(
    store: AipStore,
    fs: FsStorage,
    pkg: BuiltPackage,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    until = clock.now + timedelta(days=3650)
    _kill_before_marker(fs, monkeypatch)
    with pytest.raises(RuntimeError):
        store.commit(pkg, retain_until=until)
    monkeypatch.undo()
    assert list(store.incomplete()) == [pkg.aip_id]
    assert list(store.commit_intents()) == [pkg.aip_id]
    # The files are locked already: discarding would delete nothing and is refused up front.
    with pytest.raises(ObjectLockedError):
        store.discard_incomplete(pkg.aip_id)
    assert len(list(fs.keys(f"aips/{pkg.aip_id}/"))) == len(pkg.files)
    # An intent younger than the writer's grace is left alone; then it is finished.
    assert not store.complete(pkg.aip_id, written_before=clock.now)
    assert store.complete(pkg.aip_id, written_before=clock.now + timedelta(seconds=1))
    assert store.verify(pkg.aip_id).ok
    assert {fs.stat(k).retain_until for k in fs.keys("")} == {until}
    assert list(store.incomplete()) == [] and list(store.commit_intents()) == []
    assert not store.complete(pkg.aip_id)  # idempotent


def test_interrupted_commit_without_retention_is_discarded(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_before_marker(fs, monkeypatch)
    with pytest.raises(RuntimeError):
        store.commit(pkg)
    monkeypatch.undo()
    assert list(store.commit_intents()) == []  # nothing is locked: no intent needed
    assert not store.complete(pkg.aip_id)
    assert store.discard_incomplete(pkg.aip_id) == len(pkg.files)
    assert list(fs.keys("")) == []


def test_a_retried_commit_reuses_the_interrupted_attempts_intent(
    store: AipStore,
    fs: FsStorage,
    pkg: BuiltPackage,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    until = clock.now + timedelta(days=30)

    _kill_before_marker(fs, monkeypatch)
    with pytest.raises(RuntimeError):
        store.commit(pkg, retain_until=until)
    monkeypatch.undo()
    clock.now += timedelta(minutes=1)  # the retry's intent would carry another time
    store.commit(pkg, retain_until=until)
    assert store.verify(pkg.aip_id).ok
    assert list(fs.keys("")) == sorted(
        [f"aips/{pkg.aip_id}/{p}" for p in pkg.files] + [f"aips/{pkg.aip_id}/METS.xml"]
    )


def test_large_files_skip_the_intent_and_are_sealed_after_the_marker(
    store: AipStore,
    fs: FsStorage,
    pkg: BuiltPackage,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("archive.store.INTENT_MAX_FILE", 4096)
    until = clock.now + timedelta(days=30)
    seen: list[bytes] = []
    real_put_batches = fs.put_batches

    def spy(batches: Sequence[NewBatch], **kwargs: Any) -> None:
        objects = [o for b in batches for o in b.objects]
        seen.extend(o.data for o in objects if o.key.startswith("commit-intents/"))
        real_put_batches(batches, **kwargs)

    monkeypatch.setattr(fs, "put_batches", spy)
    store.commit(pkg, retain_until=until)
    [intent] = seen
    large = [p for p, d in pkg.files.items() if len(d) > 4096]
    assert large and all(pkg.files[p] not in intent for p in large)
    assert {fs.stat(k).retain_until for k in fs.keys("")} == {until}
    assert store.seal(pkg.aip_id) == 0


def test_an_intent_past_its_retention_is_discarded_never_finished(
    store: AipStore,
    fs: FsStorage,
    pkg: BuiltPackage,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A package disposed of after its retention must not come back from a leftover intent."""
    _kill_before_marker(fs, monkeypatch)
    with pytest.raises(RuntimeError):
        store.commit(pkg, retain_until=clock.now + timedelta(days=1))
    monkeypatch.undo()
    clock.now += timedelta(days=2)
    assert not store.complete(pkg.aip_id)
    assert not store.is_committed(pkg.aip_id)
    assert store.discard_incomplete(pkg.aip_id) == len(pkg.files)
    assert list(fs.keys("")) == []


def test_a_damaged_intent_is_reported_not_used(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, clock: Clock
) -> None:
    store.commit(pkg, retain_until=clock.now + timedelta(days=1))
    other = build_aip(make_input(aip_id=OTHER_ID))
    raw = b"KLUIS-COMMIT-INTENT 1\n{}\n" + other.root_mets
    fs.put(
        f"commit-intents/{OTHER_ID}",
        io.BytesIO(raw),
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
    )
    with pytest.raises(InvalidPackageError):
        store.complete(OTHER_ID)
    assert not store.is_committed(OTHER_ID)


def test_seal_repairs_a_commit_interrupted_after_its_marker(
    store: AipStore, fs: FsStorage, pkg: BuiltPackage, clock: Clock
) -> None:
    until = clock.now + timedelta(days=30)
    _write_all_but_root(fs, pkg)
    data = pkg.root_mets
    fs.put(
        f"aips/{pkg.aip_id}/METS.xml",
        io.BytesIO(data),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        if_absent=True,
        retain_until=until,
    )
    assert store.seal(pkg.aip_id) == len(pkg.files)
    assert store.seal(pkg.aip_id) == 0
    assert {fs.stat(k).retain_until for k in fs.keys("")} == {until}
