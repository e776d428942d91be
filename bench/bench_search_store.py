"""Helpers of ``bench/search.py --reindex N``: a real filesystem AipStore of N packages
(``archive.package.build_aip`` + ``AipStore.commit``) built once, and the timed rebuild."""

from __future__ import annotations

import json
import pickle
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archive.model import IndexRecord
from archive.package import build_aip
from archive.storage.fs import FsStorage
from archive.store import AipStore
from search import OwnerKeyer, TantivyIndex, reindex
from search._tantivy_schema import tantivy_fields
from search.model import IndexDocument
from search.projection import project_record
from tests.support.eark import make_input

STORE_FORMAT = "v2"
"""Bumped when packages change shape, so a store of the old shape is not measured as if it
were new: ``v2`` packages carry the index file (``archive.index_file``). An older
``store-<n>`` still serves, with ``--store``, to time the full read path of old packages."""


def build_store(work: Path, n: int) -> Path:
    """``<work>/store-<n>-<STORE_FORMAT>``: n packages from the 100k corpus (generated if
    missing)."""
    from search_corpus_access import corpus_path  # type: ignore[import-not-found]

    target = work / f"store-{n}-{STORE_FORMAT}"
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


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process (all threads) and of reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _cpu_us_per_doc(fn: Callable[[], object], n: int) -> float:
    before = _cpu()[0]
    fn()
    return (_cpu()[0] - before) / n * 1e6


def time_reindex(store_dir: Path, index_dir: Path, read_workers: int, processes: int = 2) -> None:
    """Where a document's CPU time goes (one process, µs per document), then whole rebuilds.

    CPU time, not wall time, is the figure to compare on a shared machine: getrusage of this
    process (all its threads, tantivy's included) and of the reader processes it reaped.
    """
    store = AipStore(FsStorage(store_dir))
    keyer = OwnerKeyer(b"bench-secret-0123456789")
    ids: list[str] = []
    n_all = len(list(store.document_ids()))  # warm the directory cache once
    listing = _cpu_us_per_doc(lambda: ids.extend(sorted(store.document_ids())), n_all)
    sample = ids[:5000]
    n = len(sample)
    records: list[IndexRecord] = []
    reading = _cpu_us_per_doc(lambda: records.extend(map(store.index_record, sample)), n)
    docs: list[IndexDocument] = []
    projecting = _cpu_us_per_doc(lambda: docs.extend(project_record(r, keyer) for r in records), n)
    pickling = _cpu_us_per_doc(lambda: pickle.loads(pickle.dumps(docs, protocol=5)), n)
    analysing = _cpu_us_per_doc(lambda: [tantivy_fields(d) for d in docs], n)
    shutil.rmtree(index_dir, ignore_errors=True)
    with TantivyIndex(index_dir) as index:
        loading = _cpu_us_per_doc(lambda: index.load(docs), n)
    manifest_text = _cpu_us_per_doc(
        lambda: [(store.manifest(a), store.read_text(a)) for a in sample[:2000]], min(n, 2000)
    )
    print(f"per-document CPU, one process, {n:,} documents (listing: all {n_all:,}):")
    print("| step | µs CPU/doc |")
    print("|---|---|")
    for name, value in [
        ("listing (document_ids)", listing),
        ("read: index_record (index file + text; without one: METS + dc.xml parse)", reading),
        ("projection (project_record: owner HMAC)", projecting),
        ("pickle to the parent and back (processes > 1)", pickling),
        ("analysis + digest (tantivy_fields)", analysing),
        ("index.load (analysis + digest + tantivy add/commit, all threads)", loading),
        ("for comparison: manifest + read_text", manifest_text),
    ]:
        print(f"| {name} | {value:,.0f} |")
    print(
        "| read: index_record | projection | pickling | per reader process: "
        f"{1e6 / (reading + projecting + pickling / 2):,.0f} docs per CPU-second |"
    )
    print()
    print(
        "| read threads | processes | docs | wall docs/s | parent µs CPU/doc "
        "| readers µs CPU/doc | total µs CPU/doc | docs per CPU-second |"
    )
    print("|---|---|---|---|---|---|---|---|")
    runs = [(1, 1), (read_workers, 1), (1, processes)]
    for threads, procs in dict.fromkeys(runs):
        shutil.rmtree(index_dir, ignore_errors=True)
        with TantivyIndex(index_dir) as index:
            own0, kids0 = _cpu()
            started = time.perf_counter()
            stats = reindex(store, index, keyer, read_workers=threads, processes=procs)
            seconds = time.perf_counter() - started
            own1, kids1 = _cpu()
        done = stats.indexed
        own = (own1 - own0) / done * 1e6
        kids = (kids1 - kids0) / done * 1e6
        print(
            f"| {threads} | {procs} | {done:,} | {done / seconds:,.0f} | {own:,.0f} "
            f"| {kids:,.0f} | {own + kids:,.0f} | {1e6 / (own + kids):,.0f} |",
            flush=True,
        )
