"""Helpers of ``bench/search.py --reindex N``: a real filesystem AipStore of N packages
(``archive.package.build_aip`` + ``AipStore.commit``) built once, and the timed rebuild."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from search import OwnerKeyer, TantivyIndex, reindex
from tests.support.eark import make_input


def build_store(work: Path, n: int) -> Path:
    """``<work>/store-<n>``: n packages from the 100k corpus (generated if missing)."""
    from search_corpus_access import corpus_path  # type: ignore[import-not-found]

    target = work / f"store-{n}"
    done = target / ".complete"
    if done.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    store = AipStore(FsStorage(target))
    base = make_input()
    started = time.perf_counter()
    with corpus_path(work, max(n, 100_000)).open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i >= n:
                break
            rec = json.loads(line)
            digits = "".join(c for c in rec["owner_id"] if c.isdigit())
            meta = replace(
                base.metadata,
                owner_id=f"{int(digits):011d}",
                agency_id=rec["agency_id"],
                document_type=rec["doc_type_id"],
                title=rec["title"],
                issued_on=date.fromisoformat(rec["issue_date"]),
                agency_ref=f"K{rec['seq']:08d}",
                retention_until=None,
            )
            created = datetime.fromisoformat(rec["archived_at"]).replace(tzinfo=UTC)
            inp = replace(
                base, aip_id=rec["doc_id"], metadata=meta, text=rec["body"], created_at=created
            )
            store.commit(build_aip(inp))
    done.write_text(str(n))
    print(f"built {n:,} packages in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def time_reindex(store_dir: Path, index_dir: Path, read_workers: int, processes: int = 2) -> None:
    store = AipStore(FsStorage(store_dir))
    keyer = OwnerKeyer(b"bench-secret-0123456789")
    ids = sorted(store.aip_ids())
    started = time.perf_counter()
    for aip_id in ids[:2000]:
        store.manifest(aip_id)
        store.read_text(aip_id)
    read_rate = 2000 / (time.perf_counter() - started)
    print(f"read only (manifest + text), 1 thread: {read_rate:,.0f} packages/s")
    started = time.perf_counter()
    for aip_id in ids[:2000]:
        store.index_record(aip_id)
    record_rate = 2000 / (time.perf_counter() - started)
    print(f"read only (index_record), 1 thread: {record_rate:,.0f} packages/s")
    print("| read threads | processes | reindex docs/s | seconds |")
    print("|---|---|---|---|")
    runs = [(1, 1), (read_workers, 1), (1, processes)]
    for threads, procs in dict.fromkeys(runs):
        shutil.rmtree(index_dir, ignore_errors=True)
        with TantivyIndex(index_dir) as index:
            started = time.perf_counter()
            stats = reindex(
                store, index, keyer, batch_size=5000, read_workers=threads, processes=procs
            )
            seconds = time.perf_counter() - started
        rate = stats.indexed / seconds
        print(f"| {threads} | {procs} | {rate:,.0f} | {seconds:.1f} |", flush=True)
