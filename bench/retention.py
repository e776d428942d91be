"""Disposal at scale: the sweep over a 1M-document index, and execution on fs storage.

usage:
  .venv/bin/python bench/retention.py [--n 1000000] [--packages 2000] [--work /tmp/kluis-bench]
      [--skip-sweep] [--skip-execute] [--skip-raw]

Sweep: the tantivy index of ``bench/search.py`` (``<work>/index-<n>-<versions>``, built from the
synthetic corpus, whose documents carry retention ends and legal holds) is reused when it is
there and built otherwise. Timed: draining the retention query alone, and the index-only
sweep (``confirm=False``) that writes the proposal (chunked records on fs) - the path that
must stay under 10 s. The corpus documents are not in storage, so the storage-confirmed
sweep (the default) is timed on the real package store below and projected per candidate.

Execution: ``<work>/retention-store-<p>`` holds p real packages (built once with
``archive.package.build_aip`` + ``AipStore.commit``: 90 % ``attest`` issued in 2010, due for
destruction, 10 % ``besluit`` issued in 1990, due for transfer), copied with ``cp -a`` for
every run (FsStorage keeps metadata in extended attributes). Each run indexes the copy,
runs a confirmed sweep, review, approval and the timed execution: re-check of every item
against storage, transfer exports, deletion of every object, journal, index removal and the
signed certificate (dev PKI, no TSA); its CPU is this process's plus that of
``FsStorage``'s removal worker process (counted once the storage is closed), with this
process's voluntary context switches (GIL hand-offs between the cores show up there).
Then the raw baseline on fresh copies of the same
store: ``rm -rf`` of its ``aips/`` and the same trees removed by ``RAW_THREADS`` threads (each
its own package directories) with one fsync, and execution's rate as a share of the faster
(``--skip-raw`` leaves it out: quicker before/after runs of execution alone).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))

from archive.events import EventLog
from archive.storage.fs import FsStorage
from archive.store import AipStore
from kluis.settings import DEFAULT_SELECTION_LIST
from retention.disposal import Disposal
from retention.projection import RetentionProjection
from retention.proposals import ProposalStore
from retention.records import RetentionRecords
from retention.selection_list import load_selection_list
from search import IndexDocument, OwnerKeyer, TantivyIndex
from search.base import stream_retention_due
from search.projection import project_record
from signing.devpki import ensure_dev_pki
from tests.support.retention_docs import commit_document

KEYER = OwnerKeyer(b"bench-secret-0123456789")
TODAY = date(2026, 11, 29)
ROWS: list[tuple[str, str, str]] = []
RAW_THREADS = 16


def row(what: str, value: str, target: str = "") -> None:
    ROWS.append((what, value, target))
    print(f"  {what}: {value}", flush=True)


def _corpus_docs(path: Path) -> Iterator[IndexDocument]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rec: dict[str, Any] = json.loads(line)
            end = rec["retention_end"]
            yield IndexDocument(
                aip_id=rec["doc_id"],
                owner_key=KEYER.key("".join(c for c in rec["owner_id"] if c.isdigit())),
                agency_id=rec["agency_id"],
                document_type=rec["doc_type_id"],
                title=rec["title"],
                text=rec["body"],
                issued_on=date.fromisoformat(rec["issue_date"]),
                ingested_at=datetime.fromisoformat(rec["archived_at"]).replace(tzinfo=UTC),
                agency_ref=f"K{rec['seq']:08d}",
                retention_until=date.fromisoformat(end) if end else None,
                on_hold=bool(rec["legal_hold"]),
            )


def _disposal(storage: FsStorage, index: TantivyIndex, work: Path) -> Disposal:
    store = AipStore(storage)
    pki = ensure_dev_pki(work / "retention-pki")
    records = RetentionRecords(
        storage, store, EventLog(storage), load_selection_list(DEFAULT_SELECTION_LIST)
    )
    return Disposal(
        store=store,
        proposals=ProposalStore(storage),
        index=index,
        facts=records,
        keys=pki.key_source(),
        tsa_url=None,
        trust_roots=pki.trust_roots(),
        clock=lambda: datetime.combine(TODAY, datetime.min.time(), UTC),
        new_id=lambda: str(uuid.uuid4()),
    )


def bench_sweep(work: Path, n: int) -> None:
    from search_corpus_access import corpus_path, index_cache_name  # type: ignore[import-not-found]

    print(f"\nsweep over {n:,} indexed documents (cut-off {TODAY})", flush=True)
    target = work / index_cache_name(f"index-{n}")
    index = TantivyIndex(target, writer_heap_bytes=512_000_000)
    try:
        if not any(True for _ in index.ids()):
            started = time.perf_counter()
            count = index.load(_corpus_docs(corpus_path(work, n)), workers=2)
            row("index build", f"{count:,} docs in {time.perf_counter() - started:.0f} s")
        started = time.perf_counter()
        due = sum(len(p.ids) for p in stream_retention_due(index, TODAY, page_size=10_000))
        drain = time.perf_counter() - started
        row("retention query drained (ids only)", f"{due:,} ids in {drain:.1f} s")
        scratch = work / "retention-sweep-store"
        shutil.rmtree(scratch, ignore_errors=True)
        storage = FsStorage(scratch)
        disposal = _disposal(storage, index, work)
        started = time.perf_counter()
        result = disposal.sweep("bench", today=TODAY, confirm=False)
        seconds = time.perf_counter() - started
        assert result.proposal is not None
        row(
            "index-only sweep: proposal stored",
            f"{result.proposal.item_count:,} items, {result.proposal.chunk_count} chunks, "
            f"{seconds:.1f} s",
            "<= 10 s",
        )
        shutil.rmtree(scratch, ignore_errors=True)
    finally:
        index.close()


def build_store(work: Path, packages: int) -> Path:
    target = work / f"retention-store-{packages}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    store = AipStore(FsStorage(target))
    selection = load_selection_list(DEFAULT_SELECTION_LIST)
    started = time.perf_counter()
    for i in range(packages):
        transfer = i % 10 == 0
        commit_document(
            store,
            selection,
            document_type="besluit" if transfer else "attest",
            issued_on=date(1990 if transfer else 2010, 1 + i % 12, 1 + i % 28),
        )
    (target / ".complete").write_text(str(packages))
    print(f"built {packages:,} packages in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def bench_execute(work: Path, packages: int, *, raw: bool = True) -> None:
    print(f"\nexecution on fs: {packages:,} due packages", flush=True)
    source = build_store(work, packages)
    scratch = work / "retention-exec"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    subprocess.run(["cp", "-a", str(source), str(scratch / "store")], check=True)
    storage = FsStorage(scratch / "store")
    index = TantivyIndex(scratch / "index")
    try:
        store = AipStore(storage)
        projection = RetentionProjection(store, storage)
        ids = list(store.document_ids())
        index.load(project_record(projection.index_record(d), KEYER) for d in ids)
        disposal = _disposal(storage, index, work)

        started = time.perf_counter()
        swept = disposal.sweep("bench", today=TODAY)
        seconds = time.perf_counter() - started
        assert swept.proposal is not None and swept.proposal.item_count == len(ids)
        row(
            "confirmed sweep (each candidate read from storage)",
            f"{len(ids):,} in {seconds:.2f} s = {len(ids) / seconds:,.0f} candidates/s",
        )
        pid = swept.proposal.proposal_id
        disposal.review(pid, "anna")
        disposal.approve(pid, "bart")
        before = _usage()
        started = time.perf_counter()
        result = disposal.execute(pid, "carla")
        seconds = time.perf_counter() - started
        storage.close()  # ends the removal worker, so its CPU counts (a waited-for child)
        cpu, worker_cpu, switches = (a - b for a, b in zip(_usage(), before, strict=True))
        assert result.destroyed + result.transferred == len(ids), result
        row(
            "execution (re-check, export, delete, journal, certificate)",
            f"{len(ids):,} packages in {seconds:.1f} s = {len(ids) / seconds:,.0f} packages/s"
            f" ({cpu + worker_cpu:.1f} s CPU = {(cpu + worker_cpu) / len(ids) * 1000:.2f}"
            f" ms/package, {worker_cpu / len(ids) * 1000:.2f} of it in the removal worker;"
            f" {switches / len(ids):,.0f} voluntary context switches/package; load"
            f" {os.getloadavg()[0]:.1f})",
            ">= 500 packages/s",
        )
        cert = disposal.certificate(result.certificate_id)
        row("certificate", f"{len(cert.document) / 1024:,.0f} KiB JSON, verifies: "
            f"{disposal.verify(cert).ok}")  # fmt: skip
    finally:
        index.close()
        shutil.rmtree(scratch, ignore_errors=True)
    if raw:
        bench_raw_removal(source, scratch, len(ids), len(ids) / seconds)


def _usage() -> tuple[float, float, float]:
    """CPU seconds of this process and of its ended children (the removal worker, once
    closed), and this process's voluntary context switches."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        own.ru_utime + own.ru_stime,
        children.ru_utime + children.ru_stime,
        float(own.ru_nvcsw),
    )


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(top: str) -> None:
    for directory, _, files in os.walk(top, topdown=False):
        for name in files:
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def _remove_trees(trees: list[str]) -> None:
    for top in trees:
        _remove_tree(top)


def bench_raw_removal(source: Path, scratch: Path, packages: int, ours: float) -> None:
    """What the disk allows: the same package trees removed with nothing else to do, on
    fresh copies of the same store. ``rm -rf`` (one stream, no sync) and ``RAW_THREADS``
    threads each removing its own package directories, then one fsync of ``aips/`` (the
    durability execution gives). Unlink and rmdir release the GIL; on a disk that discards
    freed blocks synchronously (ext4 ``-o discard``) each waits for the device, so several
    streams overlap those waits."""
    rates = {}
    for how in ("rm -rf", f"{RAW_THREADS} threads + fsync"):
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        subprocess.run(["cp", "-a", str(source), str(scratch / "store")], check=True)
        subprocess.run(["sync"], check=True)  # the copy's writeback is not the removal's cost
        aips = str(scratch / "store" / "aips")
        started = time.perf_counter()
        if how == "rm -rf":
            subprocess.run(["rm", "-rf", aips], check=True)
        else:
            trees = sorted(aips + "/" + name for name in os.listdir(aips))
            with ThreadPoolExecutor(RAW_THREADS) as pool:
                list(pool.map(_remove_trees, [trees[i::RAW_THREADS] for i in range(RAW_THREADS)]))
            _fsync_dir(aips)
        seconds = time.perf_counter() - started
        rates[how] = packages / seconds
        load = os.getloadavg()[0]
        row(f"raw removal of the same packages: {how}",
            f"{seconds:.1f} s = {rates[how]:,.0f} packages/s (load {load:.1f})")  # fmt: skip
    shutil.rmtree(scratch, ignore_errors=True)
    best = max(rates.values())
    row("execution / fastest raw removal", f"{ours / best:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="indexed documents (sweep)")
    parser.add_argument("--packages", type=int, default=2000, help="packages (execution)")
    parser.add_argument("--work", default="/tmp/kluis-bench")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--skip-execute", action="store_true")
    parser.add_argument("--skip-raw", action="store_true", help="no raw removal baseline")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_sweep:
        bench_sweep(work, args.n)
    if not args.skip_execute:
        bench_execute(work, args.packages, raw=not args.skip_raw)
    print("\n| measure | result | target |\n|---|---|---|")
    for what, value, target in ROWS:
        print(f"| {what} | {value} | {target} |")


if __name__ == "__main__":
    main()
