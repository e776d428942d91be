"""Retention records and legal holds on the filesystem backend: recompute rate, hold
placement rate, and what the hold/retention overlay costs a reindex.

usage:
  .venv/bin/python bench/retention_records.py [--n 2000] [--workers 1 4] [--work DIR]

Builds N real packages (``build_aip`` + ``AipStore.commit``, locked until their end), then
per worker count: recompute under a list that extends every end (every object of every
package gets a new lock), a hold on half of them, and a reindex into a fresh tantivy index
from the plain store and from ``RetentionProjection.snapshot()`` (two marker listings per
run). Prints one table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.events import EventLog
from archive.storage.fs import FsStorage
from archive.store import AipStore
from retention.holds import HoldRegistry
from retention.projection import RetentionProjection, load_overlay
from retention.records import RetentionRecords
from search.projection import OwnerKeyer
from search.reindex import reindex
from search.tantivy_index import TantivyIndex
from tests.support.retention_docs import Clock, commit_document, selection


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kluis-bench-retention-"))
    rows: list[tuple[str, str, str]] = []
    keyer = OwnerKeyer(b"b" * 32)
    for workers in args.workers:
        root = work / f"w{workers}"
        shutil.rmtree(root, ignore_errors=True)
        clock = Clock()
        storage = FsStorage(root / "store", clock=clock)
        store = AipStore(storage, clock=clock)
        first = selection("bench-1")
        ids = [
            commit_document(store, first, issued_on=date(2020, 1, 6)).aip_id for _ in range(args.n)
        ]
        records = RetentionRecords(storage, store, EventLog(storage), first, clock=clock)
        start = time.perf_counter()
        report = records.recompute(
            selection("bench-2", attest={"retention": "P12Y", "action": "destroy"}),
            workers=workers,
        )
        took = time.perf_counter() - start
        rows.append(
            (
                f"recompute, {workers} worker(s)",
                f"{args.n / took:,.0f} docs/s",
                f"{report.locks_extended:,} locks extended in {took:.1f} s",
            )
        )
        holds = HoldRegistry(storage, store, EventLog(storage), clock=clock, workers=workers)
        half = ids[: args.n // 2]
        start = time.perf_counter()
        holds.place(reason="bench", mandate="bench", placed_by="bench", document_ids=half)
        took = time.perf_counter() - start
        rows.append((f"hold placement, {workers} worker(s)", f"{len(half) / took:,.0f} docs/s", ""))
        start = time.perf_counter()
        overlay = load_overlay(storage)
        took = time.perf_counter() - start
        rows.append(
            (
                "overlay listing (once per reindex)",
                f"{took * 1000:,.0f} ms",
                f"{len(overlay.held):,} held, {len(overlay.retention):,} records",
            )
        )
        projection = RetentionProjection(store, storage)
        for name, source in (("plain store", store), ("with overlay", projection.snapshot())):
            with TantivyIndex(root / f"index-{name.replace(' ', '-')}") as index:
                start = time.perf_counter()
                reindex(source, index, keyer, batch_size=2000)
                took = time.perf_counter() - start
            rows.append((f"reindex, {name}", f"{args.n / took:,.0f} docs/s", f"{took:.1f} s"))
        storage.close()
    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'rate':>14}  note")
    for what, rate, note in rows:
        print(f"{what.ljust(width)}  {rate:>14}  {note}")


if __name__ == "__main__":
    main()
