"""Leases in storage, on fs and on a real S3 store (Ceph RGW): exclusivity under races of
threads and processes, takeover after expiry (injected clocks), SIGKILL of a holder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archive.errors import InvalidKeyError, LeaseBusyError, LeaseLostError
from archive.leases import LEASES_PREFIX, Leases
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.storage.s3 import S3Storage
from tests.support.s3 import s3_server

ROOT = Path(__file__).parents[3]
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _fs(tmp: Path) -> Storage:
    return FsStorage(tmp / "store")


def _s3(tmp: Path) -> Storage:
    # A short guard timeout: a holder killed between a generation's guard and its object
    # blocks that generation only this long (see archive.leases).
    return s3_server().storage(backoff=0.01, guard_timeout=timedelta(seconds=2))


MAKERS: dict[str, Callable[[Path], Storage]] = {"fs": _fs, "s3": _s3}


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage(backend: str, tmp_path: Path) -> Iterator[Storage]:
    built = MAKERS[backend](tmp_path)
    try:
        yield built
    finally:
        built.close()


def _leases(storage: Storage, holder: str, clock: Clock | None = None) -> Leases:
    if clock is None:
        return Leases(storage, holder=holder, skew=timedelta(seconds=1))
    return Leases(storage, holder=holder, clock=clock, skew=timedelta(seconds=5))


def test_a_held_lease_is_busy_for_everyone_else_until_released(storage: Storage) -> None:
    clock = Clock()
    a, b = _leases(storage, "a", clock), _leases(storage, "b", clock)
    lease = a.acquire("fixity", TTL)
    assert lease.still_held()
    with pytest.raises(LeaseBusyError) as busy:
        b.acquire("fixity", TTL)
    assert busy.value.holder == "a"
    with pytest.raises(LeaseBusyError):
        a.acquire("fixity", TTL)  # the same instance again (another thread): busy too
    other = b.acquire("reconcile", TTL)  # another job is independent
    lease.release()
    assert not lease.still_held()
    taken = b.acquire("fixity", TTL)
    assert taken.holder == "b"
    current = {r.job: r for r in a.all()}
    assert current["fixity"].holder == "b" and not current["fixity"].released
    assert current["reconcile"].holder == "b"
    other.release()
    assert a.current("reconcile") is not None and a.current("reconcile").released  # type: ignore[union-attr]


def test_an_expired_lease_is_taken_over_only_after_the_skew_margin(storage: Storage) -> None:
    clock_a, clock_b = Clock(), Clock()
    a, b = _leases(storage, "a", clock_a), _leases(storage, "b", clock_b)
    lease = a.acquire("upkeep", TTL)
    clock_b.advance(60 + 4)  # expired, but within the skew margin of b's clock
    with pytest.raises(LeaseBusyError):
        b.acquire("upkeep", TTL)
    clock_a.advance(55)  # the holder counts it as gone before anyone may take it
    assert not lease.still_held()
    clock_b.advance(1)
    taken = b.acquire("upkeep", TTL)
    assert taken.still_held()
    # The stalled holder finds out at its next unit of work and stops.
    with pytest.raises(LeaseLostError):
        lease.keep()
    with pytest.raises(LeaseLostError):
        lease.renew()
    lease.release()  # leaves b's lease alone
    assert b.current("upkeep").holder == "b"  # type: ignore[union-attr]


def test_the_holder_renews_before_half_the_ttl_is_gone_and_old_generations_are_pruned(
    storage: Storage,
) -> None:
    clock = Clock()
    a, b = _leases(storage, "a", clock), _leases(storage, "b", clock)
    lease = a.acquire("sweep", TTL)
    first = lease.record.expires
    clock.advance(20)
    lease.keep()  # more than half left: nothing written
    assert lease.record.expires == first
    for _ in range(10):
        clock.advance(40)
        lease.keep()
        assert lease.still_held()
        with pytest.raises(LeaseBusyError):
            b.acquire("sweep", TTL)
    assert lease.record.expires == clock() + TTL
    assert lease.record.generation == 11
    keys = list(storage.keys(f"{LEASES_PREFIX}sweep/"))
    assert len(keys) == 3, keys  # the newest three generations stay
    # A stall past expiry with nobody taking over: renewal still works.
    clock.advance(600)
    assert not lease.still_held()
    lease.keep()
    assert lease.still_held()


def test_a_stale_creator_never_wins_with_a_pruned_generation(storage: Storage) -> None:
    clock = Clock()
    a, b = _leases(storage, "a", clock), _leases(storage, "b", clock)
    lease = a.acquire("fixity", TTL)
    for _ in range(5):
        clock.advance(40)
        lease.renew()
    assert not storage.exists(f"{LEASES_PREFIX}fixity/{1:012d}")  # pruned
    # b read generation 1 long ago (expired by now) and creates generation 2 only now.
    assert b._create("fixity", 2, TTL) is None
    assert not storage.exists(f"{LEASES_PREFIX}fixity/{2:012d}")  # it stepped back
    assert b.current("fixity").holder == "a"  # type: ignore[union-attr]
    assert lease.still_held()


def test_job_names_are_one_key_segment(storage: Storage) -> None:
    with pytest.raises(InvalidKeyError):
        _leases(storage, "a").acquire("a/b", TTL)
    with pytest.raises(ValueError):
        _leases(storage, "a").acquire("ttl-too-short", timedelta(seconds=1))


def test_keep_alive_renews_from_a_thread_while_the_work_runs(storage: Storage) -> None:
    leases = _leases(storage, "a")
    lease = leases.acquire("long", timedelta(seconds=3))
    with lease, lease.keep_alive(every=timedelta(seconds=0.3)):
        time.sleep(4)  # longer than the ttl: only the heartbeat keeps it
        assert lease.still_held()
        with pytest.raises(LeaseBusyError):
            _leases(storage, "b").acquire("long", timedelta(seconds=3))
    assert _leases(storage, "b").acquire("long", timedelta(seconds=3)).holder == "b"


def _overlaps(intervals: list[tuple[float, float, str]]) -> list[tuple[object, object]]:
    ordered = sorted(intervals)
    return [(x, y) for x, y in zip(ordered, ordered[1:], strict=False) if y[0] < x[1]]


def test_racing_threads_never_hold_the_same_lease_at_once(storage: Storage) -> None:
    intervals: list[tuple[float, float, str]] = []
    errors: list[BaseException] = []
    deadline = time.monotonic() + 6

    def worker(name: str) -> None:
        leases = _leases(storage, name)
        try:
            while time.monotonic() < deadline:
                try:
                    lease = leases.acquire("race", timedelta(seconds=10))
                except LeaseBusyError:
                    continue
                start = time.monotonic()
                time.sleep(0.02)
                assert lease.still_held()
                intervals.append((start, time.monotonic(), name))
                lease.release()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(intervals) >= 10
    assert len({name for _, _, name in intervals}) >= 2
    assert _overlaps(intervals) == []


# -- processes ------------------------------------------------------------------------------


def _storage_spec(storage: Storage, tmp_path: Path) -> dict[str, str]:
    if isinstance(storage, S3Storage):
        server = s3_server()
        return {
            "kind": "s3",
            "endpoint": server.endpoint,
            "access_key": server.access_key,
            "secret_key": server.secret_key,
            "bucket": storage.bucket,
            "guard_bucket": storage.guard_bucket or "",
        }
    assert isinstance(storage, FsStorage)
    return {"kind": "fs", "root": str(storage.root)}


def _open(spec: dict[str, str]) -> Storage:
    if spec["kind"] == "s3":
        return S3Storage(
            spec["endpoint"],
            spec["access_key"],
            spec["secret_key"],
            spec["bucket"],
            guard_bucket=spec["guard_bucket"] or None,
            guard_timeout=timedelta(seconds=2),
            backoff=0.01,
        )
    return FsStorage(Path(spec["root"]))


def race_worker(spec_json: str, name: str, seconds: float, out: str) -> None:
    """Child process: take the lease whenever free for ``seconds``; log intervals (wall clock,
    shared by every process of this machine) as JSON lines."""
    storage = _open(json.loads(spec_json))
    leases = _leases(storage, name)
    deadline = time.time() + seconds
    with open(out, "a") as log:
        while time.time() < deadline:
            try:
                lease = leases.acquire("race", timedelta(seconds=10))
            except LeaseBusyError:
                continue
            start = time.time()
            time.sleep(0.02)
            end = time.time()
            held = lease.still_held()
            lease.release()
            log.write(json.dumps([start, end, name, held]) + "\n")
            log.flush()


def hold_worker(spec_json: str, ttl: float) -> None:
    """Child process: take the lease, say so, keep it alive until killed."""
    storage = _open(json.loads(spec_json))
    lease = _leases(storage, f"victim-{os.getpid()}").acquire("victim", timedelta(seconds=ttl))
    with lease.keep_alive(every=timedelta(seconds=ttl / 4)):
        print("held", flush=True)
        time.sleep(600)


def _python(call: str) -> list[str]:
    return [sys.executable, "-c", f"from tests.unit.archive.test_leases import *; {call}"]


@pytest.mark.slow
def test_racing_processes_never_hold_the_same_lease_at_once(
    storage: Storage, tmp_path: Path
) -> None:
    spec = json.dumps(_storage_spec(storage, tmp_path))
    out = tmp_path / "intervals.jsonl"
    procs = [
        subprocess.Popen(
            _python(f"race_worker({spec!r}, 'p{i}', 6.0, {str(out)!r})"), cwd=ROOT, env=os.environ
        )
        for i in range(3)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(row[3] for row in rows)
    intervals = [(row[0], row[1], row[2]) for row in rows]
    assert len(intervals) >= 10
    assert len({name for _, _, name in intervals}) >= 2
    assert _overlaps(intervals) == []


@pytest.mark.slow
def test_the_lease_of_a_killed_holder_is_taken_over_after_it_expires(
    storage: Storage, tmp_path: Path
) -> None:
    ttl = 3.0
    spec = json.dumps(_storage_spec(storage, tmp_path))
    child = subprocess.Popen(
        _python(f"hold_worker({spec!r}, {ttl})"),
        cwd=ROOT,
        env=os.environ,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        time.sleep(ttl)  # the heartbeat keeps it past its first ttl
        survivor = _leases(storage, "survivor")
        with pytest.raises(LeaseBusyError):
            survivor.acquire("victim", timedelta(seconds=ttl))
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    killed = time.monotonic()
    while True:
        try:
            lease = survivor.acquire("victim", timedelta(seconds=ttl))
            break
        except LeaseBusyError:
            assert time.monotonic() - killed < ttl + 1 + 3, "no takeover after expiry"
            time.sleep(0.1)
    waited = time.monotonic() - killed
    assert waited <= ttl + 1 + 3  # ttl + skew + a guard timeout on s3 at worst
    assert lease.holder == "survivor"


def test_an_interrupted_job_stops_at_its_next_unit_but_holds_until_it_releases(
    storage: Storage,
) -> None:
    clock = Clock()
    lease = _leases(storage, "a", clock).acquire("fixity", TTL)
    lease.interrupt("shutting down")
    with pytest.raises(LeaseLostError, match="shutting down"):
        lease.keep()
    with pytest.raises(LeaseBusyError):
        _leases(storage, "b", clock).acquire("fixity", TTL)  # the unit in flight may finish
    lease.release()
    assert _leases(storage, "b", clock).acquire("fixity", TTL).holder == "b"
