"""Storage throughput: Kluis' AipStore/Storage next to the raw paths, measured in one run.

usage: .venv/bin/python bench/storage.py [--backends fs,s3] [--n 100] [--runs 3] [--big-mb 1024]

s3 needs a server: KLUIS_TEST_S3_ENDPOINT (+ _ACCESS_KEY, _SECRET_KEY), e.g. from
``S3_PYTHON=.venv/bin/python CEPH_OBJECTSTORE=memstore bash deploy/ceph/start.sh``.
fs writes under bench/out/ (git-ignored). Rows:

- packages/s written: ``AipStore.commit`` (every file fsync'd or PUT, root METS last,
  retention, seal) vs raw: the same files written with open/write/fsync/rename (fs) or plain
  minio ``put_object`` (s3), expressed per package;
- packages/s read: ``manifest`` + stream the PDF (every metadata file checked) vs raw reads of
  the same files;
- MB/s for one big object (``--big-mb``) written and read vs raw (fs: write+fsync/read;
  s3: minio ``put_object``/``get_object`` with the same part size);
- peak Python memory (tracemalloc) during the big write and read.
Every rate is the median of ``--runs`` runs; the machine is shared, so expect noise.
"""

from __future__ import annotations

import argparse
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.model import BuiltPackage
from archive.package import build_aip
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.storage.s3 import DEFAULT_PART_SIZE
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


def median_rate(runs: int, n: int, fn: Callable[[], None]) -> float:
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def bench_packages(
    storage: Storage,
    raw_put: Callable[[str, bytes], None],
    raw_get: Callable[[str], bytes],
    n: int,
    runs: int,
) -> dict[str, float]:
    store = AipStore(storage)
    until = datetime.now(UTC) + timedelta(days=1)
    batches = [packages(n) for _ in range(runs)]
    written: list[BuiltPackage] = []
    it = iter(batches)

    def ours_write() -> None:
        batch = next(it)
        for pkg in batch:
            store.commit(pkg, retain_until=until)
        written.extend(batch)

    w = median_rate(runs, n, ours_write)
    ids = [p.aip_id for p in written[:n]]

    def ours_read() -> None:
        for aip_id in ids:
            manifest = store.manifest(aip_id)
            with store.open_file(aip_id, manifest.pdf_path) as handle:
                handle.read()

    r = median_rate(runs, n, ours_read)
    raw_batches = [packages(n) for _ in range(runs)]
    rit = iter(raw_batches)
    raw_keys: list[str] = []

    def raw_write() -> None:
        for pkg in next(rit):
            for path, data in [*pkg.files.items(), ("METS.xml", pkg.root_mets)]:
                key = f"raw/{pkg.aip_id}/{path}"
                raw_put(key, data)
                raw_keys.append(key)

    rw = median_rate(runs, n, raw_write)
    per_pkg = len(raw_keys) // (n * runs)
    read_keys = raw_keys[: n * per_pkg]

    def raw_read() -> None:
        for key in read_keys:
            raw_get(key)

    rr = median_rate(runs, n, raw_read)
    return {"write": w, "read": r, "raw_write": rw, "raw_read": rr, "files": per_pkg}


def bench_big(
    storage: Storage,
    raw_put: Callable[[str, int], None],
    raw_get: Callable[[str], int],
    size: int,
) -> dict[str, float]:
    sha = pattern_sha256(size)
    tracemalloc.start()
    start = time.perf_counter()
    storage.put("big/ours", io.BufferedReader(Pattern(size), MB), size=size, sha256=sha)
    w = size / MB / (time.perf_counter() - start)
    _, peak_w = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    got = 0
    with storage.open("big/ours") as handle:  # read like the raw path: no hashing in the loop
        while chunk := handle.read(MB):
            got += len(chunk)
    r = size / MB / (time.perf_counter() - start)
    _, peak_r = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert got == size and storage.stat("big/ours").sha256 == sha
    start = time.perf_counter()
    raw_put("big/raw", size)
    rw = size / MB / (time.perf_counter() - start)
    start = time.perf_counter()
    got = raw_get("big/raw")
    rr = size / MB / (time.perf_counter() - start)
    assert got == size
    storage.delete("big/ours")  # every version: the test cluster keeps objects in memory
    storage.delete("big/raw")
    return {
        "write": w,
        "read": r,
        "raw_write": rw,
        "raw_read": rr,
        "peak_w": peak_w / MB,
        "peak_r": peak_r / MB,
    }


def fs_backend(root: Path) -> tuple[Storage, Any, Any, Any, Any]:
    shutil.rmtree(root, ignore_errors=True)
    storage = FsStorage(root / "kluis")
    raw = root / "raw"

    def put(key: str, data: bytes) -> None:
        path = raw / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name("." + path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

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

    def get_big(key: str) -> int:
        n = 0
        with open(raw / key, "rb") as f:
            while chunk := f.read(MB):
                n += len(chunk)
        return n

    return storage, put, get, put_big, get_big


def s3_backend() -> tuple[Storage, Any, Any, Any, Any]:
    from tests.support.s3 import S3Server

    server = S3Server(
        os.environ["KLUIS_TEST_S3_ENDPOINT"],
        os.environ.get("KLUIS_TEST_S3_ACCESS_KEY", "kluis-test-access"),
        os.environ.get("KLUIS_TEST_S3_SECRET_KEY", "kluis-test-secret-0123456789"),
    )
    storage = server.storage()
    client = server.client()
    bucket = storage.bucket

    def put(key: str, data: bytes) -> None:
        client.put_object(bucket, key, io.BytesIO(data), len(data))

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

    return storage, put, get, put_big, get_big


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="fs,s3")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=1024)
    args = parser.parse_args()
    rows = []
    for name in args.backends.split(","):
        built = fs_backend(OUT) if name == "fs" else s3_backend()
        storage, put, get, put_big, get_big = built
        try:
            p = bench_packages(storage, put, get, args.n, args.runs)
            b = bench_big(storage, put_big, get_big, args.big_mb * MB)
        finally:
            storage.close()
            if name == "fs":
                shutil.rmtree(OUT, ignore_errors=True)
        rows.append((name, p, b))
    print(
        f"storage bench: n={args.n} packages x {args.runs} runs (median), big object "
        f"{args.big_mb} MiB, load1 {os.getloadavg()[0]:.2f}, {os.cpu_count()} cpus"
    )
    print("| backend | what | Kluis | raw | raw/Kluis |")
    print("|---|---|---|---|---|")
    for name, p, b in rows:
        files = int(p["files"])
        for label, ours, raw in (
            (f"packages/s written ({files} files each)", p["write"], p["raw_write"]),
            ("packages/s read (manifest + PDF)", p["read"], p["raw_read"]),
            (f"MB/s write {args.big_mb} MiB object", b["write"], b["raw_write"]),
            (f"MB/s read {args.big_mb} MiB object", b["read"], b["raw_read"]),
        ):
            print(f"| {name} | {label} | {ours:.1f} | {raw:.1f} | {raw / ours:.2f}x |")
        print(
            f"| {name} | peak Python memory, big write / read | "
            f"{b['peak_w']:.1f} / {b['peak_r']:.1f} MiB | | |"
        )
    print(f"max RSS of this process: {_maxrss_mb():.0f} MiB")


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
