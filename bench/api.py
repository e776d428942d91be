#!/usr/bin/env python3
# ruff: noqa: E501
"""The HTTP API under load: uvicorn on loopback, concurrent agencies and citizens, with the
in-process cost of the same operations measured in the same run (our HTTP overhead).

usage: .venv/bin/python bench/api.py [--docs 200000] [--owners 5000] [--real 300]
                                     [--clients 50] [--agencies 4] [--seconds 10]

Phases ``list``, ``download`` and ``ingest`` are closed loop (every client sends its next
request as soon as the last is answered: saturation throughput, latency = queueing);
``list@N/s`` paces each citizen at ``--rate`` requests/s (open loop, N/s in total), which is
how the p99 target is read.

1. A fresh data directory under bench/out/api/ (git-ignored). ``--real`` documents are
   ingested in process through the real pipeline (validate, PAdES seal, AIP, fsync'd
   storage, index) by ``--agencies`` threads: that is the CLI batch ingest baseline (the
   ``Ingestor`` loop ``kluis ingest`` runs, without the process start per file).
2. ``--docs`` synthetic index entries spread over ``--owners`` citizens are bulk-loaded into
   the index so every citizen list searches an index of that size.
3. In-process timings of the list query, the content read and ingest.
4. ``uvicorn`` (one process, JSON logs on, as ``kluis serve`` runs it) on 127.0.0.1; then
   phases of ``--seconds`` each: citizens listing; citizens downloading; agencies
   ingesting; everything at once. Latency per request is client-observed (aiohttp, same
   machine, so it includes the client's own CPU share). Medians and percentiles per phase.

The machine is shared: numbers vary run to run; read the load average printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from ingest.submission import Submission
from kluis.auth import mint_dev_token
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from search.model import IndexDocument, Query
from tests.support.pdfs import make_pdf

OUT = Path(__file__).resolve().parent / "out" / "api"
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


def inprocess_ingest(args: argparse.Namespace, settings: KluisSettings) -> float:
    services = build_services(settings)
    try:
        pdf = make_pdf(["Bench in process", "vergunning"])
        until = time.perf_counter() + args.seconds
        counter = iter(range(10**9))

        def worker(agency: int) -> int:
            done = 0
            while time.perf_counter() < until:
                n = next(counter)
                services.ingestor.ingest(
                    Submission(
                        agency_id=f"OVO{agency + 1:06d}",
                        owner=owner_number(n % 50),
                        document_type="attest",
                        title=f"In process {n}",
                        agency_ref=f"inproc-{n}",
                    ),
                    pdf,
                )
                done += 1
            return done

        started = time.perf_counter()
        with ThreadPoolExecutor(args.agencies) as pool:
            total = sum(pool.map(worker, range(args.agencies)))
        return total / (time.perf_counter() - started)
    finally:
        services.close()


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

        keys = [services.keyer.key(owner_number(i)) for i in range(args.owners)]
        start_day = date(2015, 1, 1)
        now = datetime.now(UTC)

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
        loaded = services.index.load(synthetic(), workers=2)
        print(f"index: {loaded} synthetic entries in {time.perf_counter() - started:.0f} s")
        services.index.refresh()

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


class Load:
    def __init__(self, base: str, tokens: dict[str, str], real: list[tuple[str, str]]) -> None:
        self.base = base
        self.tokens = tokens
        self.by_owner: dict[str, list[str]] = {}
        for owner, aip in real:
            self.by_owner.setdefault(owner, []).append(aip)
        self.pdfs = [make_pdf([f"Bench {i}", "vergunning"]) for i in range(8)]
        self.counter = 0
        self.rate = 0.0

    async def _pace_start(self) -> None:
        if self.rate:  # spread the clients over one period
            await asyncio.sleep(random.random() / self.rate)
        self.errors: dict[str, int] = {}

    def _err(self, what: str, status: int) -> None:
        key = f"{what} {status}"
        self.errors[key] = self.errors.get(key, 0) + 1

    async def lister(
        self, session: aiohttp.ClientSession, owner: str, until: float, out: list[float]
    ) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[owner]}"}
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
            async with session.get(f"{self.base}/v1/me/documents?limit=20", headers=headers) as r:
                await r.read()
                if r.status != 200:
                    self._err("list", r.status)
            out.append(time.perf_counter() - t)

    async def downloader(
        self, session: aiohttp.ClientSession, owner: str, until: float, out: list[float]
    ) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[owner]}"}
        docs = self.by_owner[owner]
        i = 0
        while time.perf_counter() < until:
            t = time.perf_counter()
            url = f"{self.base}/v1/me/documents/{docs[i % len(docs)]}/content"
            async with session.get(url, headers=headers) as r:
                await r.read()
                if r.status != 200:
                    self._err("content", r.status)
            out.append(time.perf_counter() - t)
            i += 1

    async def agency(
        self, session: aiohttp.ClientSession, agency: str, until: float, out: list[float]
    ) -> None:
        headers = {"Authorization": f"Bearer {self.tokens[agency]}"}
        while time.perf_counter() < until:
            self.counter += 1
            n = self.counter
            form = aiohttp.FormData()
            form.add_field(
                "file",
                self.pdfs[n % len(self.pdfs)],
                filename="a.pdf",
                content_type="application/pdf",
            )
            meta = {
                "owner": owner_number(n % 50),
                "type": "attest",
                "title": f"Bench {n}",
                "ref": f"http-{n}",
            }
            form.add_field("metadata", json.dumps(meta))
            t = time.perf_counter()
            async with session.post(f"{self.base}/v1/documents", data=form, headers=headers) as r:
                await r.read()
                if r.status != 201:
                    self._err("ingest", r.status)
            out.append(time.perf_counter() - t)


async def run_phases(
    args: argparse.Namespace, load: Load, owners: list[str], agencies: list[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    connector = aiohttp.TCPConnector(limit=args.clients + args.agencies + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        # warm-up
        warm: list[float] = []
        await asyncio.gather(
            *(load.lister(session, o, time.perf_counter() + 1, warm) for o in owners[:10])
        )

        async def phase(name: str, tasks: list[tuple[str, Any, str]]) -> None:
            until = time.perf_counter() + args.seconds
            buckets: dict[str, list[float]] = {}
            started = time.perf_counter()
            coros = []
            for label, fn, who in tasks:
                coros.append(fn(session, who, until, buckets.setdefault(label, [])))
            await asyncio.gather(*coros)
            elapsed = time.perf_counter() - started
            for label, lat in buckets.items():
                rows.append({"phase": name, **row(label, lat, elapsed)})
            print(f"phase {name}: done", flush=True)

        await phase("list", [("GET /v1/me/documents", load.lister, o) for o in owners])
        if args.rate:
            load.rate = args.rate
            await phase(
                f"list@{args.rate * len(owners):.0f}/s",
                [("GET /v1/me/documents", load.lister, o) for o in owners],
            )
            load.rate = 0.0
        await phase("download", [("GET …/content", load.downloader, o) for o in owners])
        await phase("ingest", [("POST /v1/documents", load.agency, a) for a in agencies])
        half = len(owners) // 2
        await phase(
            "mixed",
            [("POST /v1/documents", load.agency, a) for a in agencies]
            + [("GET /v1/me/documents", load.lister, o) for o in owners[:half]]
            + [("GET …/content", load.downloader, o) for o in owners[half:]],
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200_000, help="synthetic index entries")
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
    args = parser.parse_args()
    args.real = max(args.real, args.clients)

    shutil.rmtree(OUT, ignore_errors=True)
    data = OUT / "var"
    data.mkdir(parents=True)
    env_settings = {
        "KLUIS_DATA_DIR": str(data),
        "KLUIS_MODE": "development",
        "KLUIS_RATE_LIMIT_PER_SECOND": "1000000",
        "KLUIS_RATE_LIMIT_BURST": "1000000",
    }
    settings = KluisSettings(data_dir=data, rate_limit_per_second=1e6, rate_limit_burst=10**6)
    inproc = seed_and_measure(args, settings)

    owners = [owner_number(i) for i in range(args.clients)]
    agencies = [f"OVO{i + 1:06d}" for i in range(args.agencies)]
    tokens = {
        **{
            o: mint_dev_token(
                data,
                role="citizen",
                subject=o,
                issuer="kluis-dev",
                audience="kluis",
                ttl_seconds=7200,
            )
            for o in owners
        },
        **{
            a: mint_dev_token(
                data,
                role="agency",
                subject=a,
                issuer="kluis-dev",
                audience="kluis",
                ttl_seconds=7200,
            )
            for a in agencies
        },
    }
    port = free_port()
    server_code = (
        "from kluis.observability import configure_logging; configure_logging();"
        "import uvicorn; from kluis.api.app import create_app;"
        f"uvicorn.run(create_app(), host='127.0.0.1', port={port}, log_config=None, access_log=False)"
    )
    log = (OUT / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", server_code],
        env={**os.environ, **env_settings},
        cwd=str(OUT),
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        "the server did not start; see bench/out/api/server.log"
                    ) from None
                time.sleep(0.2)
        load = Load(base, tokens, inproc["real"])
        rows = asyncio.run(run_phases(args, load, owners, agencies))
        # The CLI batch baseline again, now, under the same machine load as the HTTP phase
        # (the server is idle; this process ingests through its own Services, as
        # `kluis ingest` does while a server runs).
        inproc["inproc_ingest_after_per_s"] = inprocess_ingest(args, settings)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()

    print()
    print(
        f"index: {inproc['index_total']} documents, {args.owners} citizens "
        f"(~{args.docs // args.owners} each); {args.clients} concurrent citizens, "
        f"{args.agencies} concurrent agencies, {args.seconds:.0f} s per phase; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'phase':12} {'endpoint':22} {'n':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    )
    for r in rows:
        print(
            f"{r['phase']:12} {r['name']:22} {r['n']:6d} {r['per_s']:8.1f} {r['p50']:8.1f} {r['p95']:8.1f} {r['p99']:8.1f}"
        )
    print("\nin process, same data, one thread (no HTTP, no auth, no audit record):")
    for key in ("inproc_list", "inproc_content"):
        r = inproc[key]
        print(
            f"  {r['name']:28} n={r['n']:5d} p50 {r['p50']:6.2f} ms  p95 {r['p95']:6.2f} ms  p99 {r['p99']:6.2f} ms"
        )
    http_ingest = next(r["per_s"] for r in rows if r["phase"] == "ingest")
    base_ingest = inproc["inproc_ingest_per_s"]
    after = inproc["inproc_ingest_after_per_s"]
    print(
        f"  ingest, {args.agencies} threads: in process {base_ingest:.1f} docs/s (seeding, "
        f"before the server) and {after:.1f} docs/s (right after the HTTP phases); "
        f"over HTTP {http_ingest:.1f} docs/s = {100 * http_ingest / base_ingest:.0f} % / "
        f"{100 * http_ingest / after:.0f} %"
    )
    if load.errors:
        print("non-2xx answers:", load.errors)
    print("server log: bench/out/api/server.log")


if __name__ == "__main__":
    main()
