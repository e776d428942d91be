"""Storage throughput: Kluis' AipStore/Storage next to the raw paths, measured in one run.

usage: .venv/bin/python bench/storage.py [--backends fs,s3] [--n 100] [--runs 3] [--big-mb 1024]

s3 needs a server: KLUIS_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY), e.g. from
``S3_PYTHON=.venv/bin/python CEPH_OBJECTSTORE=memstore bash deploy/ceph/start.sh``. On that
4 GiB memstore cluster mind the big objects: deleted, they still hold their space until RGW's
garbage collection (2 h by default; ``radosgw-admin gc process --include-all`` runs it now),
and a full OSD blocks every write. ``--big-mb 256`` measures the same path; the big object
is written once per round, so s3 runs one round unless ``--big-runs`` says otherwise.
fs writes under bench/out/ (git-ignored). Rows:

- packages/s written: ``AipStore.commit`` with a retention (commit intent, every file fsync'd
  or PUT under retention, root METS last, intent deleted; s3 deletes it in the background and
  the timed run includes waiting for that) vs raw: the same files written one
  after another (s3: plain minio ``put_object``; fs: the minimal durable, atomic write of new
  files: open/write/fsync/rename each, then fsync once each directory that got a new entry,
  i.e. the one a file was renamed into and the parent of each directory created: without
  those a crash can lose a renamed file or its directory although its fsync returned),
  expressed per package. Kluis writes a package's files concurrently (fs: fsyncs, s3: PUTs),
  so a second row gives the raw path the same concurrency;
- packages/s read: ``manifest`` + stream the PDF given that manifest (the root METS read and
  parsed once; the descriptive metadata and the PDF checked against it; the PREMIS is read,
  checked and parsed only on first use, which a download does not make) vs raw reads of all
  the package's files; a second row also uses the manifest's signature (PREMIS read and
  parsed: a detail page);
- MB/s for one big object (``--big-mb``) written and read vs raw (fs: write+fsync/read;
  s3: minio ``put_object``/``get_object`` with the same part size), the median of
  ``--big-runs`` rounds in which ours and raw take turns going first, each side deleting
  its object before the other writes (see :func:`bench_big`: on this VM the writer that
  needs memory nobody freed just before pays ~2,500 us of CPU per MiB more); it was one
  run, ours first and traced;
- peak Python memory (tracemalloc) during the big write and read.
Every package rate is the median of ``--runs`` runs; Kluis and raw runs alternate (ours, raw,
ours, raw, ...) so that load from other users of the shared machine hits both alike. Next to
each rate: CPU time (every thread of this process) per package, or per MiB for the big
object, which that load hardly changes; it leaves out waiting for the disk (fsync).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
import shutil
import statistics
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.model import BuiltPackage
from archive.package import build_aip
from archive.storage.base import Storage
from archive.storage.fs import SYNC_WORKERS, FsStorage
from archive.storage.s3 import DEFAULT_PART_SIZE, DEFAULT_PUT_WORKERS, S3Storage
from archive.store import AipStore
from tests.support.eark import make_input

OUT = Path(__file__).resolve().parent / "out" / "storage"
MB = 1024 * 1024


class Pattern(io.RawIOBase):
    """``size`` pseudo-random-looking bytes generated on the fly (never all in memory)."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = hashlib.sha256(b"seed").digest() * (MB // 32)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left, len(self._block))
        buffer[:n] = self._block[:n]
        self._left -= n
        return n


def pattern_sha256(size: int) -> str:
    digest = hashlib.sha256()
    src = io.BufferedReader(Pattern(size), MB)
    while chunk := src.read(MB):
        digest.update(chunk)
    return digest.hexdigest()


def packages(n: int) -> list[BuiltPackage]:
    return [build_aip(make_input(str(uuid.uuid4()))) for _ in range(n)]


def interleaved_rates(
    runs: int, n: int, **fns: Callable[[], None]
) -> tuple[dict[str, float], dict[str, float]]:
    """Median rate (n per second) and median CPU time per item (microseconds, every thread of
    this process) of each function over ``runs`` rounds. Each round runs every function once,
    in turn, so a load change on the shared machine hits all of them alike; the CPU time
    hardly depends on that load at all (it leaves out waiting for the disk)."""
    rates: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append((time.process_time() - start_cpu) / n * 1e6)
            rates[name].append(n / (time.perf_counter() - start))
    return (
        {name: statistics.median(r) for name, r in rates.items()},
        {name: statistics.median(c) for name, c in cpu.items()},
    )


RawPut = Callable[[list[tuple[str, bytes]], ThreadPoolExecutor | None], None]
"""Write one package's files the raw way: one after another, or on the pool's threads."""


def bench_packages(
    storage: Storage,
    raw_put: RawPut,
    raw_get: Callable[[str], bytes],
    n: int,
    runs: int,
    workers: int,
) -> dict[str, float]:
    store = AipStore(storage)
    until = datetime.now(UTC) + timedelta(days=1)
    ours_batches = iter([packages(n) for _ in range(runs)])
    raw_batches = iter([packages(n) for _ in range(runs)])
    parallel_batches = iter([packages(n) for _ in range(runs)])
    pool = ThreadPoolExecutor(workers)
    written: list[BuiltPackage] = []
    raw_keys: list[str] = []

    def ours_write() -> None:
        batch = next(ours_batches)
        for pkg in batch:
            store.commit(pkg, retain_until=until)
        if isinstance(storage, S3Storage):
            storage.drain()  # the intents' deletions it deferred are part of the writing
        written.extend(batch)

    def raw_write() -> None:
        for pkg in next(raw_batches):
            files = [(f"raw/{pkg.aip_id}/{path}", data) for path, data in pkg.files.items()]
            files.append((f"raw/{pkg.aip_id}/METS.xml", pkg.root_mets))
            raw_put(files, None)
            raw_keys.extend(key for key, _ in files)

    def raw_parallel_write() -> None:
        # The raw path with the concurrency Kluis uses: a package's files at once.
        for pkg in next(parallel_batches):
            files = [(f"rawp/{pkg.aip_id}/{path}", data) for path, data in pkg.files.items()]
            files.append((f"rawp/{pkg.aip_id}/METS.xml", pkg.root_mets))
            raw_put(files, pool)

    writes, write_cpu = interleaved_rates(
        runs, n, ours=ours_write, raw=raw_write, raw_parallel=raw_parallel_write
    )
    pool.shutdown()
    ids = [p.aip_id for p in written[:n]]
    per_pkg = len(raw_keys) // (n * runs)
    read_keys = raw_keys[: n * per_pkg]

    def ours_read() -> None:
        for aip_id in ids:
            manifest = store.manifest(aip_id)
            with store.open_file(aip_id, manifest.pdf_path, manifest=manifest) as handle:
                handle.read()

    def ours_full_read() -> None:
        # A detail page with a download: the manifest's PREMIS part (parsed on first use)
        # too, so that deferring that parse cannot hide its cost.
        for aip_id in ids:
            manifest = store.manifest(aip_id)
            assert manifest.signature.level and manifest.events is not None
            with store.open_file(aip_id, manifest.pdf_path, manifest=manifest) as handle:
                handle.read()

    def raw_read() -> None:
        for key in read_keys:
            raw_get(key)

    reads, read_cpu = interleaved_rates(
        runs, n, ours=ours_read, raw=raw_read, ours_full=ours_full_read
    )
    return {
        "write": writes["ours"],
        "read": reads["ours"],
        "full_read": reads["ours_full"],
        "cpu_full_read": read_cpu["ours_full"],
        "raw_write": writes["raw"],
        "raw_parallel_write": writes["raw_parallel"],
        "raw_read": reads["raw"],
        "cpu_write": write_cpu["ours"],
        "cpu_raw_write": write_cpu["raw"],
        "cpu_raw_parallel_write": write_cpu["raw_parallel"],
        "cpu_read": read_cpu["ours"],
        "cpu_raw_read": read_cpu["raw"],
        "files": per_pkg,
        "workers": workers,
    }


def bench_big(
    storage: Storage,
    raw_put: Callable[[str, int], None],
    raw_get: Callable[[str], int],
    size: int,
    runs: int,
    raw_delete: Callable[[str], None] | None = None,
    warm_up: bool = False,
) -> dict[str, float]:
    """Medians over ``runs`` rounds of: ours written, read and deleted, and raw written, read
    and deleted (``raw_delete``, default ``storage.delete``; deletions untimed; every other
    round raw goes first); then one more untimed write and read of ours under tracemalloc for
    the peak memory (tracing slows allocation: no timed run pays for it).

    Each side deletes its object before the other side writes, so both write into memory
    the one before just freed. On this VM a 256 MiB write into memory not freed just before
    costs up to ~2,500 us of CPU per MiB more (raw writes in a row: 1,368, 3,039, 2,591 us/MiB;
    right after deleting those files: 331, 426; 3 s later: 2,678): with both objects kept to
    the end of the round, whoever wrote second paid it, so each median mixed a cheap round
    with a dear one. ``warm_up`` (fs) writes and deletes one raw object first, untimed, so
    that the first round's first writer does not pay it either."""
    sha = pattern_sha256(size)
    mib = size / MB
    found: dict[str, list[float]] = {}

    def note(name: str, start: float, start_cpu: float) -> None:
        rate, cpu = _per_mib(mib, start, start_cpu)
        found.setdefault(name, []).append(rate)
        found.setdefault("cpu_" + name, []).append(cpu)

    def ours_write() -> None:
        storage.put("big/ours", io.BufferedReader(Pattern(size), MB), size=size, sha256=sha)

    def ours_read() -> None:
        got = 0
        with storage.open("big/ours") as handle:  # like the raw path: no hashing in the loop
            while chunk := handle.read(MB):
                got += len(chunk)
        assert got == size

    def raw_read(key: str) -> None:
        assert raw_get(key) == size

    def ours_delete() -> None:
        assert storage.stat("big/ours").sha256 == sha
        storage.delete("big/ours")  # every version: the test cluster keeps objects in memory

    delete_raw = storage.delete if raw_delete is None else raw_delete
    if warm_up:
        raw_put("big/warm-up", size)
        delete_raw("big/warm-up")
    for round_ in range(runs):
        # A fresh raw file each round: rewriting one in place (truncate) costs ext4 more.
        raw_key = f"big/raw-{round_}"
        ours: list[tuple[str | None, Callable[[], None]]] = [
            ("write", ours_write),
            ("read", ours_read),
            (None, ours_delete),
        ]
        raw: list[tuple[str | None, Callable[[], None]]] = [
            ("raw_write", functools.partial(raw_put, raw_key, size)),
            ("raw_read", functools.partial(raw_read, raw_key)),
            (None, functools.partial(delete_raw, raw_key)),
        ]
        # Who goes first alternates: the disk may still be busy with the other's object.
        for name, fn in ours + raw if round_ % 2 == 0 else raw + ours:
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if name is not None:
                note(name, start, start_cpu)
    tracemalloc.start()
    ours_write()
    _, peak_w = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    ours_read()
    _, peak_r = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    storage.delete("big/ours")
    result = {name: statistics.median(values) for name, values in found.items()}
    return result | {"peak_w": peak_w / MB, "peak_r": peak_r / MB}


def _per_mib(mib: float, start: float, start_cpu: float) -> tuple[float, float]:
    """MiB/s since ``start`` and CPU microseconds per MiB since ``start_cpu``."""
    cpu = (time.process_time() - start_cpu) / mib * 1e6
    return mib / (time.perf_counter() - start), cpu


def fs_backend(root: Path) -> tuple[Storage, Any, Any, Any, Any, Callable[[], None]]:
    shutil.rmtree(root, ignore_errors=True)
    storage = FsStorage(root / "kluis")
    raw = root / "raw"

    def put_one(item: tuple[str, bytes]) -> None:
        path = raw / item[0]
        tmp = path.with_name("." + path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(item[1])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def put(files: list[tuple[str, bytes]], pool: ThreadPoolExecutor | None) -> None:
        changed: dict[Path, None] = {}  # directories with a new entry
        for key, _ in files:
            parent = (raw / key).parent
            missing = []
            while not parent.is_dir():
                missing.append(parent)
                parent = parent.parent
            for folder in reversed(missing):
                folder.mkdir(exist_ok=True)
                changed[folder.parent] = None
            changed[(raw / key).parent] = None
        if pool is None:
            for item in files:
                put_one(item)
            for folder in changed:
                fsync_dir(folder)
        else:
            list(pool.map(put_one, files))
            list(pool.map(fsync_dir, changed))

    def get(key: str) -> bytes:
        return (raw / key).read_bytes()

    def put_big(key: str, size: int) -> None:
        path = raw / key
        path.parent.mkdir(parents=True, exist_ok=True)
        src = io.BufferedReader(Pattern(size), MB)
        with open(path, "wb") as f:
            while chunk := src.read(MB):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(path.parent)  # its new entry (negligible next to the data)

    def get_big(key: str) -> int:
        n = 0
        with open(raw / key, "rb") as f:
            while chunk := f.read(MB):
                n += len(chunk)
        return n

    return storage, put, get, put_big, get_big, lambda: shutil.rmtree(root, ignore_errors=True)


def fs_raw_delete(root: Path) -> Callable[[str], None]:
    """Delete a raw big file of :func:`fs_backend` under ``root`` (not an object of ours)."""
    return lambda key: (root / "raw" / key).unlink()


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def s3_backend() -> tuple[Storage, Any, Any, Any, Any, Callable[[], None]]:
    from tests.support.s3 import S3Server

    server = S3Server(
        os.environ["KLUIS_TEST_S3_ENDPOINT"],
        os.environ.get("KLUIS_TEST_S3_ACCESS_KEY", "kluis-test-access"),
        os.environ.get("KLUIS_TEST_S3_SECRET_KEY", "kluis-test-secret-0123456789"),
    )
    storage = server.storage()
    client = server.client()
    bucket = storage.bucket

    def put_one(item: tuple[str, bytes]) -> None:
        client.put_object(bucket, item[0], io.BytesIO(item[1]), len(item[1]))

    def put(files: list[tuple[str, bytes]], pool: ThreadPoolExecutor | None) -> None:
        if pool is None:
            for item in files:
                put_one(item)
        else:
            list(pool.map(put_one, files))

    def get(key: str) -> bytes:
        response = client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def put_big(key: str, size: int) -> None:
        client.put_object(
            bucket, key, io.BufferedReader(Pattern(size), MB), size, part_size=DEFAULT_PART_SIZE
        )

    def get_big(key: str) -> int:
        response = client.get_object(bucket, key)
        n = 0
        try:
            for chunk in response.stream(MB):
                n += len(chunk)
        finally:
            response.close()
            response.release_conn()
        return n

    return storage, put, get, put_big, get_big, lambda: s3_remove_raw(client, bucket)


def s3_remove_raw(client: Any, bucket: str) -> None:
    """Remove every version of the raw path's objects (ours stay: they are locked). The test
    cluster is a 4 GiB memstore shared by everyone's tests: leave little behind."""
    from minio.deleteobjects import DeleteObject

    for prefix in ("raw/", "rawp/"):
        found = client.list_objects(bucket, prefix=prefix, recursive=True, include_version=True)
        victims = [DeleteObject(o.object_name, o.version_id) for o in found]
        for i in range(0, len(victims), 1000):
            for error in client.remove_objects(bucket, victims[i : i + 1000]):
                print(f"could not remove {error.name}: {error.message}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="fs,s3")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument(
        "--big-runs",
        type=int,
        default=0,
        help="rounds of the big object (default: --runs made even on fs, 1 on s3)",
    )
    args = parser.parse_args()
    rows = []
    for name in args.backends.split(","):
        built = fs_backend(OUT) if name == "fs" else s3_backend()
        storage, put, get, put_big, get_big, cleanup = built
        try:
            # s3: Kluis sends put_workers PUTs from its pool plus one from the calling thread
            workers = SYNC_WORKERS if name == "fs" else DEFAULT_PUT_WORKERS + 1
            p = bench_packages(storage, put, get, args.n, args.runs, workers)
            # fs: an even number of rounds, so that each side goes first equally often
            big_runs = args.big_runs or (args.runs + args.runs % 2 if name == "fs" else 1)
            fs = name == "fs"
            raw_delete = fs_raw_delete(OUT) if fs else None
            b = bench_big(storage, put_big, get_big, args.big_mb * MB, big_runs, raw_delete, fs)
        finally:
            try:
                cleanup()
            except Exception as exc:  # a slow server's cleanup must not cost the measurements
                print(f"warning: cleanup of {name} failed: {exc}", file=sys.stderr)
            storage.close()
        rows.append((name, p, b))
    print(
        f"storage bench: n={args.n} packages x {args.runs} runs (median), big object "
        f"{args.big_mb} MiB, load1 {os.getloadavg()[0]:.2f}, {os.cpu_count()} cpus"
    )
    print("| backend | what | Kluis | raw | raw/Kluis | CPU us Kluis / raw | CPU ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, p, b in rows:
        files = int(p["files"])
        for label, ours, raw, cpu, raw_cpu in (
            (
                f"packages/s written ({files} files each)",
                p["write"],
                p["raw_write"],
                p["cpu_write"],
                p["cpu_raw_write"],
            ),
            (
                f"packages/s written, raw {int(p['workers'])} files at once",
                p["write"],
                p["raw_parallel_write"],
                p["cpu_write"],
                p["cpu_raw_parallel_write"],
            ),
            (
                "packages/s read (manifest + PDF)",
                p["read"],
                p["raw_read"],
                p["cpu_read"],
                p["cpu_raw_read"],
            ),
            (
                "packages/s read (manifest + signature + PDF)",
                p["full_read"],
                p["raw_read"],
                p["cpu_full_read"],
                p["cpu_raw_read"],
            ),
            (
                f"MB/s write {args.big_mb} MiB object (CPU per MiB)",
                b["write"],
                b["raw_write"],
                b["cpu_write"],
                b["cpu_raw_write"],
            ),
            (
                f"MB/s read {args.big_mb} MiB object (CPU per MiB)",
                b["read"],
                b["raw_read"],
                b["cpu_read"],
                b["cpu_raw_read"],
            ),
        ):
            print(
                f"| {name} | {label} | {ours:.1f} | {raw:.1f} | {raw / ours:.2f}x "
                f"| {cpu:.0f} / {raw_cpu:.0f} | {cpu / raw_cpu:.2f}x |"
            )
        print(
            f"| {name} | peak Python memory, big write / read | "
            f"{b['peak_w']:.1f} / {b['peak_r']:.1f} MiB | | | | |"
        )
    print(f"max RSS of this process: {_maxrss_mb():.0f} MiB")


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
