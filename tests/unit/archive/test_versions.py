"""AIP versions: a new version is a new AIP pointing to its predecessor; stored ones never
change; readers get the newest by default and any older one on request (fs and s3)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archive.errors import InvalidPackageError, ObjectExistsError, PackageNotFoundError
from archive.model import BuiltPackage, PackageInput, PremisEvent
from archive.package import build_aip
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import VERSION_CLAIM_GRACE, AipStore
from tests.support.s3 import s3_server


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def vstore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AipStore]:
    storage: Storage = (
        s3_server().storage() if request.param == "s3" else FsStorage(tmp_path / "store")
    )
    try:
        yield AipStore(storage)
    finally:
        storage.close()


def _next_version(inp: PackageInput, previous: str, detail: str) -> BuiltPackage:
    renewed = PremisEvent(
        str(uuid.uuid4()), "digital signature generation", datetime.now(UTC), "success", detail
    )
    return build_aip(
        dataclasses.replace(
            inp,
            aip_id=str(uuid.uuid4()),
            previous_aip_id=previous,
            events=(*inp.events, renewed),
        )
    )


def test_new_versions_point_back_and_readers_get_the_newest(
    vstore: AipStore, inp: PackageInput, pkg: BuiltPackage
) -> None:
    until = (datetime.now(UTC) + timedelta(days=5)).replace(microsecond=0)
    first = vstore.commit(pkg, retain_until=until)
    v2 = _next_version(inp, pkg.aip_id, "renewed seal")
    manifest2, number2 = vstore.commit_version(v2, retain_until=until)
    assert number2 == 2 and manifest2.previous_aip_id == pkg.aip_id
    v3 = _next_version(inp, v2.aip_id, "renewed again")
    _, number3 = vstore.commit_version(v3, retain_until=until)
    assert number3 == 3

    doc = pkg.aip_id
    assert vstore.versions(doc) == [doc, v2.aip_id, v3.aip_id]
    assert vstore.resolve(doc) == v3.aip_id
    assert vstore.resolve(doc, 1) == doc and vstore.resolve(doc, 2) == v2.aip_id
    assert vstore.document_of(v3.aip_id) == doc
    with pytest.raises(PackageNotFoundError):
        vstore.resolve(doc, 4)
    assert vstore.manifest(doc) == first  # the first version is untouched
    assert vstore.manifest(v3.aip_id).events[-1].detail == "renewed again"
    assert vstore.verify(doc).ok and vstore.verify(v3.aip_id).ok

    stale = _next_version(inp, v2.aip_id, "built against an old version")
    with pytest.raises(ObjectExistsError):
        vstore.commit_version(stale)
    with pytest.raises(InvalidPackageError):
        vstore.commit_version(build_aip(dataclasses.replace(inp, aip_id=str(uuid.uuid4()))))


def test_racing_new_versions_make_one(
    vstore: AipStore, inp: PackageInput, pkg: BuiltPackage
) -> None:
    vstore.commit(pkg)
    candidates = [_next_version(inp, pkg.aip_id, f"writer {n}") for n in range(4)]
    barrier = threading.Barrier(len(candidates))
    won: list[str] = []
    lost: list[str] = []

    def attempt(candidate: BuiltPackage) -> None:
        barrier.wait()
        try:
            vstore.commit_version(candidate)
            won.append(candidate.aip_id)
        except ObjectExistsError:
            lost.append(candidate.aip_id)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in candidates]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 3
    assert vstore.versions(pkg.aip_id) == [pkg.aip_id, won[0]]


def test_a_claimed_version_blocks_the_next_until_its_writer_must_be_dead(
    tmp_path: Path, inp: PackageInput, pkg: BuiltPackage
) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    storage = FsStorage(tmp_path / "store")
    store = AipStore(storage, clock=lambda: now[0])
    store.commit(pkg)
    # A writer claimed version 2 and died before storing its package.
    dead = f"{uuid.uuid4()}\n{now[0].isoformat()}".encode()
    storage.put(
        f"versions/{pkg.aip_id}/000002",
        io.BytesIO(dead),
        size=len(dead),
        sha256=hashlib.sha256(dead).hexdigest(),
        if_absent=True,
    )
    late = _next_version(inp, pkg.aip_id, "built on version 1")
    with pytest.raises(ObjectExistsError, match="being written"):
        store.commit_version(late)  # the writer may still be alive: no fork of the chain
    now[0] += VERSION_CLAIM_GRACE + timedelta(seconds=1)
    _, number = store.commit_version(late)
    assert number == 3  # the dead claim's number is not reused
    assert store.versions(pkg.aip_id) == [pkg.aip_id, late.aip_id]
