"""The fixity rotation job: every package is checked once per cycle over successive runs (fs
and S3), a flipped byte on fs is found (PREMIS failure event, reported corrupt), an
interrupted run resumes at its checkpoint, and a holder that lost its lease checks nothing."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archive.errors import LeaseLostError
from archive.events import EventLog
from archive.leases import Leases
from archive.package import build_aip
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.jobs import Checkpoint, rotate_fixity
from tests.support.eark import make_input
from tests.support.s3 import s3_server

pytestmark = pytest.mark.integration
T0 = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)
PACKAGES = 7


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[FsStorage]:
    storage = FsStorage(tmp_path / "store")
    yield storage
    storage.close()


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, fs: FsStorage) -> Iterator[Storage]:
    if request.param == "fs":
        yield fs
        return
    s3 = s3_server().storage(backoff=0.01)
    yield s3
    s3.close()


def _commit_packages(storage: Storage) -> list[str]:
    store = AipStore(storage)
    made = []
    for _ in range(PACKAGES):
        aip_id = str(uuid.uuid4())
        store.commit(build_aip(make_input(aip_id=aip_id)))
        made.append(aip_id)
    return sorted(made)


@pytest.fixture
def ids(fs: FsStorage) -> list[str]:
    return _commit_packages(fs)


def _fixity_events(fs: Storage, aip_id: str) -> list[str]:
    return [e.outcome for e in EventLog(fs).events(aip_id) if e.event_type == "fixity check"]


def test_every_package_is_checked_once_per_cycle(storage: Storage) -> None:
    fs = storage
    ids = _commit_packages(fs)
    store, log = AipStore(fs), EventLog(fs)
    leases = Leases(fs, holder="a")
    seen: list[str] = []
    completed = 0
    for _ in range(7):  # 7 runs x 3 = 21 checks = 3 cycles of 7 packages
        with leases.acquire("fixity", TTL) as lease:
            report = rotate_fixity(store, log, fs, lease, sample=3)
        assert len(report.checked) == 3
        assert report.corrupt == ()
        seen.extend(report.checked)
        completed += report.completed_cycles
    assert seen == ids * 3  # key order, wrapping around, nothing skipped or repeated
    assert completed == 3 - 1  # the third cycle ended exactly at the last run's last package
    assert report.cycle == 3
    for aip_id in ids:
        assert _fixity_events(fs, aip_id) == ["success"] * 3
    # An archive smaller than the sample: each package once per run.
    with leases.acquire("fixity", TTL) as lease:
        report = rotate_fixity(store, log, fs, lease, sample=50)
    assert sorted(report.checked) == ids and len(report.checked) == PACKAGES


def test_a_flipped_byte_is_found_and_recorded(fs: FsStorage, ids: list[str]) -> None:
    victim = ids[4]
    store = AipStore(fs)
    pdf_path = fs.root / "aips" / victim / store.manifest(victim).pdf_path
    data = bytearray(pdf_path.read_bytes())
    data[len(data) // 2] ^= 0x01
    pdf_path.write_bytes(bytes(data))

    leases = Leases(fs, holder="a")
    found: list[str] = []
    for _ in range(3):
        with leases.acquire("fixity", TTL) as lease:
            report = rotate_fixity(store, EventLog(fs), fs, lease, sample=3)
        found.extend(report.corrupt)
        if report.corrupt:
            assert "mismatch" in report.details[victim]
    assert found == [victim]
    assert _fixity_events(fs, victim) == ["failure"]
    assert _fixity_events(fs, ids[0]) == ["success", "success"]  # 9 checks of 7 packages
    assert _fixity_events(fs, ids[2]) == ["success"]


def test_an_interrupted_run_resumes_and_a_lost_lease_stops_the_job(
    fs: FsStorage, ids: list[str]
) -> None:
    store = AipStore(fs)
    clock_a, clock_b = Clock(), Clock()
    a = Leases(fs, holder="a", clock=clock_a)
    b = Leases(fs, holder="b", clock=clock_b)
    lease = a.acquire("fixity", TTL)
    first = rotate_fixity(store, EventLog(fs), fs, lease, sample=2)
    assert first.checked == tuple(ids[:2])
    # a stalls past its lease; b takes the job over.
    clock_a.now = clock_b.now = T0 + TTL + timedelta(seconds=6)
    taken = b.acquire("fixity", TTL)
    with pytest.raises(LeaseLostError):
        rotate_fixity(store, EventLog(fs), fs, lease, sample=2)
    assert Checkpoint(fs, "fixity").read() == {"after": ids[1], "cycle": 1}
    second = rotate_fixity(store, EventLog(fs), fs, taken, sample=2)
    assert second.checked == tuple(ids[2:4])  # resumed after a's last package
    counts = Counter(i for i in ids for _ in _fixity_events(fs, i))
    assert [counts[i] for i in ids] == [1, 1, 1, 1, 0, 0, 0]
    assert len(list(fs.keys("job-state/fixity/"))) == 1  # old checkpoints are removed
