#!/usr/bin/env python3
# ruff: noqa: E501, E402
"""The HTTP API under load: uvicorn on loopback, concurrent agencies and citizens, with the
in-process cost of the same operations measured in the same run (our HTTP overhead).

usage: .venv/bin/python bench/api.py [--docs 1000000] [--owners 5000] [--real 300]
                                     [--clients 50] [--agencies 4] [--seconds 10]
                                     [--workers 2] [--ingest-processes 2] [--rate 2]
                                     [--phases list,download,ingest,mixed]
                                     [--cache /tmp/kluis-bench]

Phases ``list``, ``download`` and ``ingest`` are closed loop (every client sends its next
request as soon as the last is answered: saturation throughput, latency = queueing);
``list@N/s`` paces each citizen at ``--rate`` requests/s (open loop, N/s in total), which is
how the p99 target is read.

1. A fresh data directory under bench/out/api/ (git-ignored). ``--docs`` synthetic index
   entries spread over ``--owners`` citizens are built once into ``--cache``
   (``api-index-<docs>-<owners>-<schema and analysis versions>``, with a fixed owner-key secret), left to finish its
   segment merges, and hard-linked in, so every citizen list searches an index of that size
   without rebuilding it each run (~3-7 min/1M) and no merge of the bulk load runs while
   something is being measured.
2. ``--real`` documents are ingested in process through the real pipeline (validate, PAdES
   seal, AIP, fsync'd storage, index) by ``--agencies`` threads.
3. In-process timings of the list query and the content read.
4. The CLI batch ingest baseline: 1 process, ``--workers`` processes and ``--agencies``
   processes (the best layout counts), ``--agencies`` threads in all, each running the
   ``Ingestor`` loop ``kluis ingest`` runs (without the process start per file) on the
   same PDFs and metadata as the HTTP agencies, at the same signing level, and ending with
   the index applied (``refresh``, timed); once before the server starts and once after it
   stops.
5. ``kluis serve --workers N`` (uvicorn, JSON logs on, ``--workers`` processes sharing
   ``--ingest-processes`` ingest processes: the same cores as the baseline) on 127.0.0.1;
   then phases of ``--seconds`` each: citizens listing (closed loop, then paced); citizens
   downloading; agencies ingesting; everything at once (``--phases`` picks some).
   Latency per request is client-observed (aiohttp in this process, on the same cores, so it
   includes the client's own CPU share; deposits go over plain asyncio streams, see
   ``RawHttp``); ``srv`` columns are the server's own time per request from its access log
   (request ids carry the phase); ``srv CPU`` and ``gen CPU`` are CPU ms per request of the
   phase in the server's process tree and in this load generator.
6. CPU per document is printed for every CLI layout and for the deposits over HTTP: on
   saturated cores their ratio is the throughput ratio, and it moves far less than the rates
   when other work shares the host.

The machine is shared: numbers vary run to run; read the load averages printed with them.
``KLUIS_BENCH_TREE=/path/to/other/checkout`` measures another copy of the code (the tree
before a change, say) with this same bench; add ``--workers 1 --http h11 --loop asyncio``
for the way ``kluis serve`` ran before it had workers and uvloop/httptools.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# KLUIS_BENCH_TREE: run this bench against another copy of the code (e.g. the tree before a
# change): this process, the baseline processes and the server all import from it.
TREE = Path(os.environ.get("KLUIS_BENCH_TREE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(TREE))

import aiohttp
import tantivy
import uvloop

from ingest.submission import Submission
from kluis.auth import mint_dev_token
from kluis.settings import KluisSettings
from kluis.wiring import build_keyer, build_services
from search.model import IndexDocument, Query
from search.tantivy_index import TantivyIndex
from tests.support.pdfs import make_pdf

OUT = Path(__file__).resolve().parent / "out" / "api"
OWNER_KEY_SECRET = "bench-api-owner-key-secret-0123456789"
"""Fixed, so a cached synthetic index matches the owner keys of every run."""
WORDS = [
    "besluit",
    "vergunning",
    "attest",
    "aanvraag",
    "gemeente",
    "college",
    "burger",
    "belasting",
    "premie",
    "woning",
    "subsidie",
    "onderwijs",
    "zorg",
    "bouw",
    "milieu",
    "verkeer",
    "inschrijving",
    "uittreksel",
]


def owner_number(i: int) -> str:
    """A valid national register number (born 1950..1999) for citizen ``i``."""
    yy = 50 + (i // 997) % 50
    serial = 1 + i % 997
    month = 1 + (i // (997 * 50)) % 12
    base = int(f"{yy:02d}{month:02d}15{serial:03d}")
    return f"{base:09d}{97 - base % 97:02d}"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def row(name: str, lat: list[float], seconds: float | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(lat),
        "per_s": len(lat) / seconds if seconds else None,
        "p50": pct(lat, 50) * 1000,
        "p95": pct(lat, 95) * 1000,
        "p99": pct(lat, 99) * 1000,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- in process


def bench_pdfs() -> list[bytes]:
    """The PDFs both the CLI baseline and the HTTP agencies deposit."""
    return [make_pdf([f"Bench {i}", "vergunning"]) for i in range(8)]


def bench_submission(agency: str, n: int, prefix: str) -> Submission:
    """Deposit ``n`` of a run: the same metadata over HTTP (as JSON) and in process."""
    return Submission(
        agency_id=agency,
        owner=owner_number(n % 50),
        document_type="attest",
        title=f"Bench {n}",
        agency_ref=f"{prefix}-{n}",
    )


def _baseline_process(
    settings: KluisSettings,
    index: int,
    threads: int,
    seconds: float,
    tag: str,
    ready: Any,
    results: Any,
) -> None:
    """One CLI ingest process: ``threads`` Ingestor loops for ``seconds`` once every process
    has opened its backends (``ready``); puts (count, seconds, first error) on ``results``."""
    services = build_services(settings)
    errors: list[str] = []
    try:
        pdfs = bench_pdfs()
        counter = iter(range(index, 10**9, 1000))  # disjoint refs per process

        def worker(thread: int) -> int:
            done = 0
            agency = f"OVO{thread + 1:06d}"
            while time.perf_counter() < until:
                n = next(counter)
                try:
                    services.ingestor.ingest(bench_submission(agency, n, tag), pdfs[n % len(pdfs)])
                except Exception as exc:  # counted as not done, reported once
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                done += 1
            return done

        # Warm: the first deposit of a process pays lazy imports and caches (the server's
        # workers are warmed the same way before the HTTP phases).
        warm = bench_submission("OVO000001", 10**8 + index, tag + "-warm")
        services.ingestor.ingest(warm, pdfs[0])
        ready.wait()
        started = time.perf_counter()
        cpu = own_cpu()
        until = started + seconds
        with ThreadPoolExecutor(threads) as pool:
            count = sum(pool.map(worker, range(threads)))
        # A batch ends with its documents searchable, as `kluis ingest` does (the server
        # pays for the same index work with its indexer thread during the HTTP phase).
        services.index.refresh()
        elapsed = time.perf_counter() - started
        results.put((count, elapsed, own_cpu() - cpu, errors[:1], len(errors)))
    finally:
        services.close()


def own_cpu() -> float:
    """CPU seconds (user + system, every thread) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def tree_cpu(root: int, workers: int) -> tuple[float, float]:
    """CPU seconds of process ``root`` and every descendant (the server: its workers, their
    ingest processes), from /proc: user + system of every thread, plus reaped children's;
    and of the HTTP side alone: ``root`` and its direct children (uvicorn's ``workers``, when
    there are several), their own threads only, without the ingest processes below them."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    own: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(fields[1])  # fields[0] is the state (field 3 of stat(5))
        ticks[pid] = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        own[pid] = sum(int(x) for x in fields[11:13])
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in ticks and pid not in tree:
            tree.add(pid)
            todo.extend(child for child, up in parent.items() if up == pid)
    # The ingest processes are children of the server (one pool, named) or of its workers.
    http = [root] + ([c for c, up in parent.items() if up == root] if workers > 1 else [])
    http = [p for p in http if _comm(p) != "kluis-ingest"]
    tick = os.sysconf("SC_CLK_TCK")
    return sum(ticks[p] for p in tree) / tick, sum(own.get(p, 0) for p in http) / tick


def cli_baseline(
    args: argparse.Namespace, settings: KluisSettings, tag: str, procs: int
) -> tuple[float, float]:
    """Docs/s of ``procs`` ingest processes with ``--agencies`` threads in all, and their
    CPU seconds per document (user + system, index applied included)."""
    threads = [
        args.agencies // procs + (1 if i < args.agencies % procs else 0) for i in range(procs)
    ]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(procs)
    results = ctx.Queue()
    children = [
        ctx.Process(
            target=_baseline_process,
            args=(settings, i, threads[i], args.seconds, tag, ready, results),
        )
        for i in range(procs)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=args.seconds + 300) for _ in children]
    for child in children:
        child.join()
    for _, _, _, first, failures in outcomes:
        if failures:
            print(f"  CLI baseline: {failures} failed ingests, e.g. {first[0]}", flush=True)
    done = sum(o[0] for o in outcomes)
    return done / max(o[1] for o in outcomes), sum(o[2] for o in outcomes) / max(1, done)


def cached_index(args: argparse.Namespace, keys: list[str]) -> Path:
    """``--docs`` synthetic entries over ``--owners`` citizens, built once under ``--cache``."""
    from search._tantivy_schema import SCHEMA_VERSION
    from search.analysis import ANALYSIS_VERSION

    # A schema or analysis bump needs a new cache: the old one would not open.
    name = f"api-index-{args.docs}-{args.owners}-s{SCHEMA_VERSION}-{ANALYSIS_VERSION}"
    cache = Path(args.cache) / name
    if (cache / "done").exists():
        settle(cache)
        return cache / "index"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    start_day = date(2015, 1, 1)
    now = datetime(2026, 11, 1, tzinfo=UTC)

    def synthetic() -> Any:
        rnd = random.Random(7)
        for n in range(args.docs):
            yield IndexDocument(
                aip_id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                owner_key=keys[n % args.owners],
                agency_id=f"OVO{rnd.randint(1, 300):06d}",
                document_type=rnd.choice(("attest", "besluit", "aanslag")),
                title=" ".join(rnd.choices(WORDS, k=4)),
                text=" ".join(rnd.choices(WORDS, k=30)),
                issued_on=start_day + timedelta(days=rnd.randint(0, 3650)),
                ingested_at=now - timedelta(seconds=rnd.randint(0, 10**8)),
                agency_ref=f"syn-{n}",
            )

    started = time.perf_counter()
    index = TantivyIndex(cache / "index")
    try:
        loaded = index.load(synthetic(), workers=2)
    finally:
        index.close()
    (cache / "done").write_text(f"{loaded}\n")
    print(f"index cache: {loaded} synthetic entries in {time.perf_counter() - started:.0f} s")
    settle(cache)
    return cache / "index"


def settle(cache: Path) -> None:
    """Let tantivy finish the merges its policy wants now. A bulk load leaves many segments,
    and the first writer after it (the baseline's, or the server's indexer) would otherwise
    merge most of the index while being measured: tens of CPU-seconds in native threads."""
    if (cache / "settled").exists():
        return
    started = time.perf_counter()
    index = tantivy.Index.open(str(cache / "index" / "tantivy"))
    for _ in range(8):
        index.reload()
        before = index.searcher().num_segments
        writer = index.writer(heap_size=100_000_000, num_threads=1)
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        if index.searcher().num_segments >= before:
            break
    writer = index.writer(heap_size=100_000_000, num_threads=1)
    writer.garbage_collect_files()
    writer.wait_merging_threads()
    (cache / "settled").write_text(f"{index.searcher().num_segments} segments\n")
    print(
        f"index cache settled: {index.searcher().num_segments} segments in {time.perf_counter() - started:.0f} s"
    )


def copy_index(source: Path, target: Path) -> None:
    """Hard links where possible: tantivy never rewrites a segment file in place (it writes
    new files and replaces meta.json by rename), so the cache stays intact."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def seed_and_measure(args: argparse.Namespace, settings: KluisSettings) -> dict[str, Any]:
    services = build_services(settings)
    result: dict[str, Any] = {}
    try:
        pdfs = [make_pdf([f"Attest {i}", random.choice(WORDS) * 3]) for i in range(16)]

        def ingest(i: int) -> tuple[str, str]:
            owner = owner_number(i % args.clients)
            sub = Submission(
                agency_id=f"OVO{(i % args.agencies) + 1:06d}",
                owner=owner,
                document_type="attest",
                title=f"Attest {i} {random.choice(WORDS)}",
                agency_ref=f"seed-{i}",
            )
            receipt = services.ingestor.ingest(sub, pdfs[i % len(pdfs)]).receipt
            return owner, receipt.aip_id

        started = time.perf_counter()
        with ThreadPoolExecutor(args.agencies) as pool:
            real = list(pool.map(ingest, range(args.real)))
        elapsed = time.perf_counter() - started
        result["inproc_ingest_per_s"] = args.real / elapsed
        print(
            f"in-process ingest ({args.agencies} threads): {args.real} docs in {elapsed:.1f} s "
            f"= {args.real / elapsed:.1f} docs/s",
            flush=True,
        )
        services.index.refresh()

        keys = [services.keyer.key(owner_number(i)) for i in range(args.clients)]
        lat = []
        for i in range(2000):
            t = time.perf_counter()
            services.index.search(Query(owner_key=keys[i % args.clients], limit=20))
            lat.append(time.perf_counter() - t)
        result["inproc_list"] = row("list (index query)", lat)
        lat = []
        for i in range(500):
            _, aip = real[i % len(real)]
            t = time.perf_counter()
            manifest = services.store.manifest(aip)
            with services.store.open_file(aip, manifest.pdf.path) as f:
                f.read()
            lat.append(time.perf_counter() - t)
        result["inproc_content"] = row("content (manifest + read)", lat)
        result["real"] = real
        result["index_total"] = services.index.search(Query(limit=1)).total
    finally:
        services.close()
    return result


# --------------------------------------------------------------------------- over HTTP


BOUNDARY = "kluis-bench-" + "7" * 24


def deposit_body(pdf: bytes, meta: dict[str, str]) -> tuple[bytes, str]:
    """The multipart/form-data request an agency sends (a file part and a metadata part),
    encoded by hand: the load generator shares the cores with the server, and aiohttp's
    FormData cost it ~1 ms of CPU per deposit (about 5 % of a deposit's own work)."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = (
        f"\r\n--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="metadata"\r\n\r\n'
        f"{json.dumps(meta)}\r\n--{BOUNDARY}--\r\n"
    ).encode()
    return head + pdf + tail, f"multipart/form-data; boundary={BOUNDARY}"


class RawHttp:
    """A deposit client speaking HTTP/1.1 over asyncio streams, for one agency. The load
    generator shares the cores with the server, and aiohttp's client cost ~0.8 ms of CPU per
    deposit (a new connection for each: the server ends it after a deposit when it runs
    several workers) against ~0.2 ms for this; an agency's client runs on its own machine.
    Keeps the connection unless the server ends it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n"
        ).encode() + body
        for attempt in (1, 2):
            fresh = self.streams is None
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.streams
            try:
                writer.write(request)
                raw = await reader.readuntil(b"\r\n\r\n")
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()  # a kept connection the server ended meanwhile: once more
                if fresh or attempt == 2:
                    raise
        lines = raw.decode("latin-1").lower().split("\r\n")
        status = int(lines[0].split()[1])
        fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        if "content-length" in fields:
            answer = await reader.readexactly(int(fields["content-length"]))
        else:
            answer = await reader.read()
            fields["connection"] = "close"
        if fields.get("connection") == "close":
            self.close()
        return status, answer


class Load:
    def __init__(
        self, base: str, tokens: dict[str, str], real: list[tuple[str, str]], server_pid: int
    ) -> None:
        self.base = base
        self.server_pid = server_pid
        self.tokens = tokens
        self.by_owner: dict[str, list[str]] = {}
        for owner, aip in real:
            self.by_owner.setdefault(owner, []).append(aip)
        self.pdfs = bench_pdfs()
        self.counter = 0
        self.rate = 0.0
        self.phase = "warm"
        self.sent = 0
        self.errors: dict[str, int] = {}

    def _headers(self, who: str) -> dict[str, str]:
        # The request id names the phase, so the server's access log can be split by phase.
        self.sent += 1
        return {
            "Authorization": f"Bearer {self.tokens[who]}",
            "X-Request-ID": f"{self.phase}.{self.sent}",
        }

    async def _pace_start(self) -> None:
        if self.rate:  # spread the clients over one period
            await asyncio.sleep(random.random() / self.rate)

    def _err(self, what: str, status: int) -> None:
        key = f"{what} {status}"
        self.errors[key] = self.errors.get(key, 0) + 1

    async def lister(
        self, session: aiohttp.ClientSession, owner: str, until: float, out: list[float]
    ) -> None:
        await self._pace_start()
        k = 0
        started = time.perf_counter()
        while time.perf_counter() < until:
            if self.rate:  # open loop: a portal user every 1/rate s, not back to back
                k += 1
                delay = started + k / self.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            t = time.perf_counter()
            url = f"{self.base}/v1/me/documents?limit=20"
            async with session.get(url, headers=self._headers(owner)) as r:
                await r.read()
                if r.status != 200:
                    self._err("list", r.status)
            out.append(time.perf_counter() - t)

    async def downloader(
        self, session: aiohttp.ClientSession, owner: str, until: float, out: list[float]
    ) -> None:
        docs = self.by_owner[owner]
        i = 0
        while time.perf_counter() < until:
            t = time.perf_counter()
            url = f"{self.base}/v1/me/documents/{docs[i % len(docs)]}/content"
            async with session.get(url, headers=self._headers(owner)) as r:
                await r.read()
                if r.status != 200:
                    self._err("content", r.status)
            out.append(time.perf_counter() - t)
            i += 1

    async def agency(
        self, session: aiohttp.ClientSession, agency: str, until: float, out: list[float]
    ) -> None:
        url = urllib.parse.urlsplit(self.base)
        client = RawHttp(url.hostname or "127.0.0.1", url.port or 80)
        while time.perf_counter() < until:
            self.counter += 1
            n = self.counter
            sub = bench_submission(agency, n, "http")
            meta = {
                "owner": sub.owner,
                "type": sub.document_type,
                "title": sub.title,
                "ref": sub.agency_ref,
            }
            body, content_type = deposit_body(self.pdfs[n % len(self.pdfs)], meta)
            headers = {**self._headers(agency), "Content-Type": content_type}
            t = time.perf_counter()
            status, _ = await client.post("/v1/documents", headers, body)
            if status != 201:
                self._err("ingest", status)
            out.append(time.perf_counter() - t)
        client.close()


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} (1/5 min)"


async def run_phases(
    args: argparse.Namespace, load: Load, owners: list[str], agencies: list[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=args.clients + args.agencies + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm-up: every worker process, every token cache, a few deposits per agency
        warm: list[float] = []
        await asyncio.gather(
            *(load.lister(session, o, time.perf_counter() + 2, warm) for o in owners),
            *(load.agency(session, a, time.perf_counter() + 2, warm) for a in agencies),
        )

        async def phase(name: str, tasks: list[tuple[str, Any, str]]) -> None:
            load.phase = re.sub(r"[^A-Za-z0-9]", "-", name)  # a valid X-Request-ID
            until = time.perf_counter() + args.seconds
            buckets: dict[str, list[float]] = {}
            started = time.perf_counter()
            (server_cpu, http_cpu), client_cpu = tree_cpu(load.server_pid, args.workers), own_cpu()
            coros = []
            for label, fn, who in tasks:
                coros.append(fn(session, who, until, buckets.setdefault(label, [])))
            await asyncio.gather(*coros)
            elapsed = time.perf_counter() - started
            # CPU per request of the phase (all its endpoints): the server's process tree
            # (workers, ingest processes, indexer) and this load generator.
            done = max(1, sum(len(lat) for lat in buckets.values()))
            server_after, http_after = tree_cpu(load.server_pid, args.workers)
            cpu = {
                "srv_cpu": (server_after - server_cpu) / done * 1000,
                "http_cpu": (http_after - http_cpu) / done * 1000,
                "cli_cpu": (own_cpu() - client_cpu) / done * 1000,
            }
            for label, lat in buckets.items():
                rows.append(
                    {"phase": name, "load": os.getloadavg()[0], **cpu, **row(label, lat, elapsed)}
                )
            print(f"phase {name}: done, {load_average()}", flush=True)

        phases = set(args.phases.split(","))
        if "list" in phases:
            await phase("list", [("GET /v1/me/documents", load.lister, o) for o in owners])
        if "list" in phases and args.rate:
            load.rate = args.rate
            await phase(
                f"list@{args.rate * len(owners):.0f}/s",
                [("GET /v1/me/documents", load.lister, o) for o in owners],
            )
            load.rate = 0.0
        if "download" in phases:
            await phase("download", [("GET …/content", load.downloader, o) for o in owners])
        if "ingest" in phases:
            await phase("ingest", [("POST /v1/documents", load.agency, a) for a in agencies])
        half = len(owners) // 2
        if "mixed" in phases:
            await phase(
                "mixed",
                [("POST /v1/documents", load.agency, a) for a in agencies]
                + [("GET /v1/me/documents", load.lister, o) for o in owners[:half]]
                + [("GET …/content", load.downloader, o) for o in owners[half:]],
            )
    return rows


ROUTES = {
    "/v1/me/documents": "GET /v1/me/documents",
    "/v1/me/documents/{document_id}/content": "GET …/content",
    "/v1/documents": "POST /v1/documents",
}


def server_times(
    log_path: Path,
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], dict[int, int]]]:
    """The server's own duration per request, and requests per worker process, by (phase,
    endpoint), from its access log."""
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    workers: dict[tuple[str, str], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    with log_path.open("rb") as f:
        for line in f:
            if b'"kluis.access"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            phase = str(entry.get("request_id", "")).rsplit(".", 1)[0]
            endpoint = ROUTES.get(str(entry.get("route")))
            if endpoint and "duration_ms" in entry:
                found[(phase, endpoint)].append(float(entry["duration_ms"]) / 1000)
                workers[(phase, endpoint)][int(entry.get("pid", 0))] += 1
    return found, workers


def start_server(
    args: argparse.Namespace, env: dict[str, str], port: int
) -> subprocess.Popen[bytes]:
    """``kluis serve --workers N``; a tree without ``kluis.api.serve`` (the code before it
    existed) runs one process the way ``kluis serve`` did then."""
    options = f"http={args.http!r}, loop={args.loop!r}"
    code = (
        "from kluis.settings import KluisSettings\n"
        "try:\n"
        "    from kluis.api.serve import serve_api\n"
        "except ImportError:\n"
        "    from kluis.observability import configure_logging; configure_logging()\n"
        "    import uvicorn; from kluis.api.app import create_app\n"
        f"    assert {args.workers} == 1, 'this tree cannot run worker processes'\n"
        f"    uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_config=None, access_log=False, {options})\n"
        "else:\n"
        f"    serve_api(KluisSettings(), host='127.0.0.1', port={port}, workers={args.workers}, {options})\n"
    )
    log = (OUT / "server.log").open("wb")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, **env, "PYTHONPATH": str(TREE)},
            cwd=str(OUT),
            stdout=log,
            stderr=log,
        )
    finally:
        log.close()


def wait_for(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not start; see bench/out/api/server.log") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=1_000_000, help="synthetic index entries")
    parser.add_argument("--owners", type=int, default=5_000)
    parser.add_argument("--real", type=int, default=300, help="documents ingested for real")
    parser.add_argument("--clients", type=int, default=50, help="concurrent citizens")
    parser.add_argument("--agencies", type=int, default=4, help="concurrent agencies")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    parser.add_argument(
        "--rate",
        type=float,
        default=2.0,
        help="requests/s per citizen in the paced list phase (0: skip it)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="server worker processes, and CLI baseline processes (default: the cores)",
    )
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="the server's ingest processes, shared by its workers (setting "
        "ingest_processes; 0: in the workers' threads; default: twice the cores, as the "
        "settings recommend)",
    )
    parser.add_argument(
        "--phases",
        default="list,download,ingest,mixed",
        help="HTTP phases to run, comma-separated (list includes the paced list)",
    )
    parser.add_argument(
        "--http", default="auto", help="uvicorn HTTP protocol: auto, h11, httptools"
    )
    parser.add_argument("--loop", default="auto", help="uvicorn event loop: auto, asyncio, uvloop")
    parser.add_argument(
        "--cache", default="/tmp/kluis-bench", help="where the synthetic index is kept"
    )
    args = parser.parse_args()
    args.real = max(args.real, args.clients)
    print(f"start: {load_average()}, {os.cpu_count()} cores", flush=True)

    shutil.rmtree(OUT, ignore_errors=True)
    data = OUT / "var"
    data.mkdir(parents=True)
    env_settings = {
        "KLUIS_DATA_DIR": str(data),
        "KLUIS_MODE": "development",
        "KLUIS_RATE_LIMIT_PER_SECOND": "1000000",
        "KLUIS_RATE_LIMIT_BURST": "1000000",
        "KLUIS_OWNER_KEY_SECRET": OWNER_KEY_SECRET,
        # Scheduled jobs off: their start-up runs would land in the first phase (they have
        # their own benches); the indexer still runs.
        "KLUIS_RECONCILE_INTERVAL_SECONDS": "0",
    }
    if "ingest_processes" in KluisSettings.model_fields:
        env_settings["KLUIS_INGEST_PROCESSES"] = str(args.ingest_processes)
    if "scheduler" in KluisSettings.model_fields:
        for job in ("fixity", "upkeep", "sweep", "disposal"):
            env_settings[f"KLUIS_SCHEDULER__{job.upper()}_INTERVAL_SECONDS"] = "0"
    settings = KluisSettings(
        data_dir=data,
        rate_limit_per_second=1e6,
        rate_limit_burst=10**6,
        owner_key_secret=OWNER_KEY_SECRET,  # type: ignore[arg-type]
    )
    keyer = build_keyer(settings)
    copy_index(
        cached_index(args, [keyer.key(owner_number(i)) for i in range(args.owners)]), data / "index"
    )
    inproc = seed_and_measure(args, settings)
    # Every process layout the server could be said to match: one process, one per server
    # worker, and one per depositor (the server's deposits then compute in that many
    # single-threaded processes too, with --ingest-processes); the best one is the baseline.
    layouts = sorted({max(1, args.workers), 1, max(1, args.agencies)}, reverse=True)
    cli: dict[tuple[str, int], float] = {}
    cli_cpu: dict[tuple[str, int], float] = {}
    for procs in layouts:
        run = ("before", procs)
        cli[run], cli_cpu[run] = cli_baseline(args, settings, f"cli-before-{procs}", procs)
        print(
            f"CLI batch ingest before the server, {procs} process(es): {cli[run]:.1f} docs/s, "
            f"{cli_cpu[run] * 1000:.1f} ms CPU/doc, {load_average()}",
            flush=True,
        )

    owners = [owner_number(i) for i in range(args.clients)]
    agencies = [f"OVO{i + 1:06d}" for i in range(args.agencies)]
    tokens = {
        who: mint_dev_token(
            data,
            role="citizen" if who in owners else "agency",
            subject=who,
            issuer="kluis-dev",
            audience="kluis",
            ttl_seconds=7200,
        )
        for who in owners + agencies
    }
    port = free_port()
    server = start_server(args, env_settings, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(server, port)
        load = Load(base, tokens, inproc["real"], server.pid)
        # The client shares the cores with the server: uvloop keeps its own share small.
        rows = uvloop.run(run_phases(args, load, owners, agencies))
    finally:
        server.terminate()
        server.wait(timeout=30)
    for procs in layouts:
        run = ("after", procs)
        cli[run], cli_cpu[run] = cli_baseline(args, settings, f"cli-after-{procs}", procs)
        print(
            f"CLI batch ingest after the server, {procs} process(es): {cli[run]:.1f} docs/s, "
            f"{cli_cpu[run] * 1000:.1f} ms CPU/doc, {load_average()}",
            flush=True,
        )
    srv, by_worker = server_times(OUT / "server.log")

    print()
    print(
        f"index: {inproc['index_total']} documents, {args.owners} citizens "
        f"(~{args.docs // args.owners} each); {args.clients} concurrent citizens, "
        f"{args.agencies} concurrent agencies, {args.seconds:.0f} s per phase; "
        f"{os.cpu_count()} cores; server: {args.workers} worker process(es) sharing "
        f"{args.ingest_processes} ingest process(es), http={args.http}, "
        f"loop={args.loop}; signing level {settings.signing_level}; scheduled jobs off"
    )
    print(
        f"{'phase':12} {'endpoint':22} {'n':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'srv p50':>8} {'srv p99':>8} {'load':>5} {'srv CPU':>8} {'gen CPU':>8}  per worker"
    )
    for r in rows:
        key = (re.sub(r"[^A-Za-z0-9]", "-", r["phase"]), r["name"])
        own = srv.get(key, [])
        share = "/".join(str(n) for n in sorted(by_worker.get(key, {}).values(), reverse=True))
        print(
            f"{r['phase']:12} {r['name']:22} {r['n']:6d} {r['per_s']:8.1f} {r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f}"
            f" {pct(own, 50) * 1000:8.1f} {pct(own, 99) * 1000:8.1f} {r['load']:5.1f}"
            f" {r['srv_cpu']:8.2f} {r['http_cpu']:8.2f} {r['cli_cpu']:8.2f}  {share}"
        )
    print(
        "(srv CPU / HTTP CPU / gen CPU: ms of CPU per request of the phase, all its endpoints, "
        "in the server's processes / in its HTTP workers alone, without their ingest processes"
        " / in this load generator)"
    )
    print("\nin process, same data, one thread (no HTTP, no auth, no audit record):")
    for measured in ("inproc_list", "inproc_content"):
        r = inproc[measured]
        print(
            f"  {r['name']:28} n={r['n']:5d} p50 {r['p50']:6.2f} ms  p95 {r['p95']:6.2f} ms  p99 {r['p99']:6.2f} ms"
        )
    ingest_row = next((r for r in rows if r["phase"] == "ingest"), None)
    http_ingest = ingest_row["per_s"] if ingest_row else float("nan")
    print(
        f"ingest, same PDFs and metadata, level {settings.signing_level}, {args.agencies} "
        f"concurrent depositors, same {os.cpu_count()} cores:"
    )
    for procs in layouts:
        before, after = cli[("before", procs)], cli[("after", procs)]
        cpu = (cli_cpu[("before", procs)] + cli_cpu[("after", procs)]) / 2 * 1000
        print(
            f"  CLI batch, {procs} process(es) x {args.agencies // procs} threads, ending with "
            f"the index applied: {before:.1f} docs/s before the server, {after:.1f} after it; "
            f"{cpu:.1f} ms CPU/doc"
        )
    best = max(cli.values())
    mean_best = max((cli[("before", p)] + cli[("after", p)]) / 2 for p in layouts)
    print(
        f"  over HTTP, {args.workers} server worker(s) sharing {args.ingest_processes} "
        f"ingest process(es): {http_ingest:.1f} docs/s = "
        f"{100 * http_ingest / mean_best:.0f} % of the best CLI layout (mean of before and "
        f"after), {100 * http_ingest / best:.0f} % of the best single CLI measurement"
    )
    if ingest_row:
        print(
            f"  CPU per deposit over HTTP: {ingest_row['srv_cpu']:.1f} ms in the server, "
            f"{ingest_row['cli_cpu']:.1f} ms in the load generator"
        )
    print(
        f"  (seeding, in process, {args.agencies} threads in one process, other PDFs, index "
        f"not applied: {inproc['inproc_ingest_per_s']:.1f} docs/s)"
    )
    if load.errors:
        print("non-2xx answers:", load.errors)
    print(f"end: {load_average()}; server log: bench/out/api/server.log")


if __name__ == "__main__":
    main()
