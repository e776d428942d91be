#!/usr/bin/env python3
"""Job leases and the fixity rotation: what a lease costs, and what the checkpoint costs.

usage: .venv/bin/python bench/leases.py [--rounds 50] [--packages 300] [--s3 http://127.0.0.1:7491]

1. Lease operations (acquire, renew, release: a listing, a conditional create, a listing
   again and a prune each) on fs and, with ``--s3`` (or ``KLUIS_TEST_S3_ENDPOINT``), on the
   S3 store with a guard bucket (as on Ceph RGW). Median and p95 over ``--rounds``.
2. Fixity of ``--packages`` packages on fs: a plain ``check_fixity`` loop against
   ``rotate_fixity`` (a lease check and a checkpoint after every package).

The machine is shared: numbers vary run to run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive.events import EventLog, check_fixity
from archive.leases import Leases
from archive.package import build_aip
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.jobs import rotate_fixity
from tests.support.eark import make_input


def _ms(samples: list[float], q: float) -> str:
    ordered = sorted(samples)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.1f}"


def lease_ops(name: str, storage: Storage, rounds: int) -> None:
    leases = Leases(storage, holder="bench")
    timings: dict[str, list[float]] = {"acquire": [], "renew": [], "release": []}
    for _ in range(rounds):
        t = time.perf_counter()
        lease = leases.acquire("bench", timedelta(seconds=60))
        timings["acquire"].append(time.perf_counter() - t)
        t = time.perf_counter()
        lease.renew()
        timings["renew"].append(time.perf_counter() - t)
        t = time.perf_counter()
        lease.release()
        timings["release"].append(time.perf_counter() - t)
    cells = " | ".join(f"{_ms(v, 0.5)} / {_ms(v, 0.95)}" for v in timings.values())
    print(f"| {name} | {cells} |")


def fixity(packages: int) -> None:
    storage = FsStorage(Path(tempfile.mkdtemp(prefix="kluis-bench-")) / "store")
    store = AipStore(storage)
    for _ in range(packages):
        store.commit(build_aip(make_input(aip_id=str(uuid.uuid4()))))
    log = EventLog(storage)
    t = time.perf_counter()
    for aip_id in list(store.aip_ids()):
        check_fixity(store, log, storage, aip_id, new_id=lambda: str(uuid.uuid4()))
    plain = time.perf_counter() - t
    t = time.perf_counter()
    with Leases(storage, holder="bench").acquire("fixity", timedelta(seconds=60)) as lease:
        report = rotate_fixity(store, log, storage, lease, sample=packages)
    rotated = time.perf_counter() - t
    assert len(report.checked) == packages
    print("| fixity on fs | packages/s |")
    print("|---|---|")
    print(f"| plain check_fixity loop ({packages}) | {packages / plain:.0f} |")
    print(f"| rotate_fixity, lease + checkpoint per package | {packages / rotated:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--s3", default=os.environ.get("KLUIS_TEST_S3_ENDPOINT"))
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}\n")
    print("| backend | acquire p50 / p95 ms | renew p50 / p95 ms | release p50 / p95 ms |")
    print("|---|---|---|---|")
    lease_ops("fs", FsStorage(Path(tempfile.mkdtemp(prefix="kluis-bench-")) / "s"), args.rounds)
    if args.s3:
        os.environ["KLUIS_TEST_S3_ENDPOINT"] = args.s3
        from tests.support.s3 import s3_server

        lease_ops("s3 + guard bucket", s3_server().storage(), args.rounds)
    print()
    fixity(args.packages)


if __name__ == "__main__":
    main()
