"""Embedded search backend at scale: build rate, size and query latency per query class.

usage:
  .venv/bin/python bench/search.py --n 100000 [--work /tmp/kluis-bench] [--seconds 10]
  .venv/bin/python bench/search.py --reindex 20000 [--work /tmp/kluis-bench] [--processes 2]

The corpus is ``bench/search_corpus.py`` (the study's generator; needs the ``bench`` extra):
owners Zipf over 1M citizens + 100k enterprises, 300 agencies, 40 types, 2015-2024. It is
generated once into ``<work>/corpus-<n>.jsonl`` and reused. Every query class runs through
our ``Index`` API (``TantivyIndex``: query validation, cursor, stored-field reads, ``Hit``
objects) and, in the same run, as a raw tantivy query of the same shape on the same
searcher, so the table shows what our layer costs. Latencies: one client thread, warm
cache, up to 2,000 queries or ``--seconds`` per class; p50/p95/p99 in ms.

``--reindex N`` builds N real packages (``archive.package.build_aip`` + ``AipStore.commit``
on the filesystem backend) under ``<work>/store-<N>-v2`` once (``--store DIR``: use that
store instead, e.g. one of packages without index files), prints where a document's CPU
time goes (listing, read, projection, pickling, analysis, tantivy; µs per document from
getrusage, so a shared machine distorts it less than wall time), then times
``search.reindex`` into a fresh index: one reader, ``--read-workers`` threads,
``--processes`` processes, with wall docs/s and the CPU of the indexing process and of the
reader processes per document.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.append(str(Path(__file__).resolve().parent))  # after the packages: this file is "search"

import tantivy
from search_corpus_access import corpus_path, index_cache_name  # type: ignore[import-not-found]

from search import IndexDocument, OwnerKeyer, Query, TantivyIndex, analyze
from search._tantivy_query import FACET_SIZE, retention_query
from search._tantivy_schema import midnight

KEYER = OwnerKeyer(b"bench-secret-0123456789")
_WORD = re.compile(r"[a-z]{5,}")


def owner_digits(owner_id: str) -> str:
    return "".join(c for c in owner_id if c.isdigit())


def to_doc(rec: dict[str, Any]) -> IndexDocument:
    retention = rec["retention_end"]
    return IndexDocument(
        aip_id=rec["doc_id"],
        owner_key=KEYER.key(owner_digits(rec["owner_id"])),
        agency_id=rec["agency_id"],
        document_type=rec["doc_type_id"],
        title=rec["title"],
        text=rec["body"],
        issued_on=date.fromisoformat(rec["issue_date"]),
        ingested_at=datetime.fromisoformat(rec["archived_at"]).replace(tzinfo=UTC),
        agency_ref=f"K{rec['seq']:08d}",
        retention_until=date.fromisoformat(retention) if retention else None,
        on_hold=bool(rec["legal_hold"]),
    )


def records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(fn: Callable[[int], object], seconds: float, cap: int = 2000) -> list[float]:
    for i in range(20):  # warm-up
        fn(i)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    i = 0
    while i < cap and time.perf_counter() < deadline:
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
        i += 1
    return times


def pct(times: list[float]) -> str:
    if len(times) < 2:
        return "-"
    q = statistics.quantiles(times, n=100, method="inclusive")
    return f"{statistics.median(times):.2f} / {q[94]:.2f} / {q[98]:.2f} ({len(times)})"


def run_queries(index: TantivyIndex, sample: list[dict[str, Any]], seconds: float) -> None:
    raw: tantivy.Index = index._index  # the same index and searcher, without our layer
    schema = raw.schema
    rng = random.Random(7)
    owners = [KEYER.key(owner_digits(r["owner_id"])) for r in sample]
    words = []
    for r in sample:
        found = _WORD.findall(r["body"].lower())
        words.append(rng.choice(found) if found else "beslissing")
    agencies = [r["agency_id"] for r in sample]
    refs = [(r["agency_id"], f"K{r['seq']:08d}") for r in sample]
    cutoffs = [date(2018 + rng.randrange(9), 1 + rng.randrange(12), 1) for _ in sample]
    m = len(sample)

    def term(field: str, value: object) -> tantivy.Query:
        return tantivy.Query.term_query(schema, field, value)

    def text_q(text: str) -> tantivy.Query:
        clauses = []
        for t in dict.fromkeys(analyze(text)):
            title = tantivy.Query.boost_query(term("title_nl", t), 2.0)
            clauses.append(
                (
                    tantivy.Occur.Must,
                    tantivy.Query.boolean_query(
                        [(tantivy.Occur.Should, title), (tantivy.Occur.Should, term("text_nl", t))]
                    ),
                )
            )
        return tantivy.Query.boolean_query(clauses)

    def must(*qs: tantivy.Query) -> tantivy.Query:
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in qs])

    def raw_docs(searcher: tantivy.Searcher, hits: list[Any]) -> None:
        for hit in hits:
            searcher.doc(hit[1])

    def raw_list(i: int) -> None:
        raw.reload()
        s = raw.searcher()
        found = s.search(term("owner_key", owners[i % m]), 21, order_by_field="ingested_us")
        raw_docs(s, found.hits)
        s.search(term("owner_key", owners[i % m]), 1, count=True)

    def raw_owner_text(i: int) -> None:
        raw.reload()
        s = raw.searcher()
        found = s.search(must(term("owner_key", owners[i % m]), text_q(words[i % m])), 21)
        raw_docs(s, found.hits)

    facets = {
        name: {"terms": {"field": name, "size": FACET_SIZE, "segment_size": FACET_SIZE}}
        for name in ("agency_id", "document_type", "year")
    }

    def raw_archivist(i: int) -> None:
        raw.reload()
        s = raw.searcher()
        q = text_q(words[i % m])
        found = s.search(q, 21, count=True)
        raw_docs(s, found.hits)
        s.aggregate(q, facets)

    def raw_archivist_filtered(i: int) -> None:
        raw.reload()
        s = raw.searcher()
        q = must(term("agency_id", agencies[i % m]), text_q(words[i % m]))
        found = s.search(q, 21, count=True)
        raw_docs(s, found.hits)
        s.aggregate(q, facets)

    def raw_dates(i: int) -> None:
        raw.reload()
        s = raw.searcher()
        lo = date(2015 + i % 10, 1, 1)
        q = must(
            term("agency_id", agencies[i % m]),
            tantivy.Query.range_query(
                schema,
                "issued_on",
                tantivy.FieldType.Date,
                midnight(lo),
                midnight(lo.replace(month=6)),
            ),
        )
        found = s.search(q, 21, count=True, order_by_field="ingested_us")
        raw_docs(s, found.hits)

    def raw_ref(i: int) -> None:
        raw.reload()
        s = raw.searcher()
        agency, ref = refs[i % m]
        found = s.search(must(term("agency_id", agency), term("agency_ref", ref)), 21, count=True)
        raw_docs(s, found.hits)

    def raw_retention(i: int) -> None:
        raw.reload()
        s = raw.searcher()
        found = s.search(
            retention_query(raw, cutoffs[i % m]),
            1000,
            count=False,
            order_by_field="id_key",
            order=tantivy.Order.Asc,
        )
        raw_docs(s, found.hits)

    def api_list(i: int) -> None:
        index.search(Query(owner_key=owners[i % m], limit=20))

    # second pages exist only for owners with more than 20 documents
    paged = []
    for owner in dict.fromkeys(owners):
        token = index.search(Query(owner_key=owner, limit=20)).next_cursor
        if token is not None:
            paged.append((owner, token))
    paged = paged or [(owners[0], None)]

    def api_list_next(i: int) -> None:
        owner, token = paged[i % len(paged)]
        index.search(Query(owner_key=owner, limit=20, cursor=token))

    classes: list[tuple[str, Callable[[int], object], Callable[[int], object] | None]] = [
        ("citizen list: own documents, newest first, 20", api_list, raw_list),
        (f"citizen list: next page (cursor; {len(paged)} owners with > 20)", api_list_next, None),
        (
            "citizen full text (own documents, relevance)",
            lambda i: index.search(
                Query(owner_key=owners[i % m], text=words[i % m], sort="relevance")
            ),
            raw_owner_text,
        ),
        (
            "archivist full text + facets (agency/type/year)",
            lambda i: index.search(
                Query(
                    text=words[i % m],
                    sort="relevance",
                    facets=("agency_id", "document_type", "year"),
                )
            ),
            raw_archivist,
        ),
        (
            "archivist full text + agency filter + facets",
            lambda i: index.search(
                Query(
                    text=words[i % m],
                    agency_id=agencies[i % m],
                    sort="relevance",
                    facets=("agency_id", "document_type", "year"),
                )
            ),
            raw_archivist_filtered,
        ),
        (
            "archivist date range + agency, newest first",
            lambda i: index.search(
                Query(
                    agency_id=agencies[i % m],
                    issued_from=date(2015 + i % 10, 1, 1),
                    issued_to=date(2015 + i % 10, 6, 1),
                )
            ),
            raw_dates,
        ),
        (
            "lookup by agency reference",
            lambda i: index.search(Query(agency_id=refs[i % m][0], agency_ref=refs[i % m][1])),
            raw_ref,
        ),
        (
            "retention: first page of 1,000 ids",
            lambda i: index.retention_due(cutoffs[i % m], limit=1000),
            raw_retention,
        ),
    ]
    print()
    print("| query class | Index API p50 / p95 / p99 ms (n) | raw tantivy p50 / p95 / p99 ms (n) |")
    print("|---|---|---|")
    for name, api, rawfn in classes:
        api_t = measure(api, seconds)
        raw_t = measure(rawfn, seconds) if rawfn is not None else []
        print(f"| {name} | {pct(api_t)} | {pct(raw_t) if rawfn else '–'} |", flush=True)
    started = time.perf_counter()
    drained = sum(len(p.ids) for p in _stream(index, date(2025, 1, 1)))
    ms = (time.perf_counter() - started) * 1000
    label = f"retention drain, cutoff 2025-01-01 ({drained:,} ids, pages of 1,000)"
    print(f"| {label} | {ms:.0f} ms | – |")


def _stream(index: TantivyIndex, before: date) -> Iterator[Any]:
    from search.base import stream_retention_due

    return stream_retention_due(index, before, page_size=1000)


def bench_index(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = corpus_path(work, args.n)
    target = work / index_cache_name(f"index-{args.n}")
    if target.exists() and not args.keep_index:
        shutil.rmtree(target)
    index = TantivyIndex(target, writer_heap_bytes=512_000_000)
    try:
        if not args.keep_index or not any(index.ids()):
            started = time.perf_counter()
            count = index.load((to_doc(r) for r in records(path)), workers=args.workers)
            seconds = time.perf_counter() - started
            size = dir_bytes(target)
            print(
                f"\nbuild: {count:,} documents in {seconds:.1f} s = {count / seconds:,.0f} docs/s "
                f"(JSON parsing, projection, Dutch analysis in Python, tantivy); index "
                f"{size / 2**20:,.0f} MiB = {size / count:,.0f} bytes/doc",
                flush=True,
            )
        rng = random.Random(11)
        picks = set(rng.sample(range(args.n), min(2000, args.n)))
        sample = [r for i, r in enumerate(records(path)) if i in picks]
        rng.shuffle(sample)
        run_queries(index, sample, args.seconds)
    finally:
        index.close()


def bench_reindex(args: argparse.Namespace) -> None:
    from bench_search_store import build_store, time_reindex  # type: ignore[import-not-found]

    work = Path(args.work)
    store_dir = Path(args.store) if args.store else build_store(work, args.reindex)
    time_reindex(store_dir, work / f"reindex-{args.reindex}", args.read_workers, args.processes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--work", default="/tmp/kluis-bench")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keep-index", action="store_true", help="reuse a built index")
    parser.add_argument("--reindex", type=int, default=0, help="packages for the reindex bench")
    parser.add_argument("--workers", type=int, default=2, help="analysis processes")
    parser.add_argument("--read-workers", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2, help="reindex reader processes")
    parser.add_argument("--store", help="reindex from this existing fs store instead")
    args = parser.parse_args()
    print(f"tantivy {getattr(tantivy, '__version__', '?')}, {os.cpu_count()} cores, n={args.n:,}")
    if args.reindex:
        bench_reindex(args)
    else:
        bench_index(args)


if __name__ == "__main__":
    main()
