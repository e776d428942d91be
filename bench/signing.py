"""Signing throughput: documents/s per PAdES level and key source, 1-page and ~5 MB PDFs,
1 process and all cores, next to the raw crypto limits measured in the same run.

usage: .venv/bin/python bench/signing.py [--runs 3] [--quick] [--levels B-B,B-T]
                                          [--sources pkcs12-rsa2048,pkcs11-rsa2048]
       .venv/bin/python bench/signing.py --memory 200,1024     (peak memory per file size)

Everything is real: a certomancer PKI (TSA, OCSP, CRLs) on a loopback port and a SoftHSM2
token, both built under bench/out/ (git-ignored). Batches go through
signing.BatchSigner: each pool worker holds its own PadesSigner (parsed key or logged-in
PKCS#11 session, time-stamper) for its whole life; for B-T and up a worker keeps several
signatures in flight (threads) on the signer's one event loop, sharing its HTTP session
and (B-LT/B-LTA) its revocation data. Input and signed output cross the process boundary
(pickled; a worker returns only the bytes the signature appended), as they would in a
service. Cells are medians of --runs runs.

Rows per cell: "1, no pool" is one PadesSigner in this process (the honest fastest way to
use one core: no pool, no IPC; above B-B it keeps IN_FLIGHT signatures going, like a
worker); "1, pool" and "N, pool" are BatchSigners with 1 and N (= cores) workers; "N,
separate" is N independent processes with one PadesSigner each and no IPC per document, the
ceiling any pool can reach on the box as it is during the run. All rows' runs alternate, so
load spikes hit every row alike.
"wall speed-up" is docs/s over the "1, no pool" docs/s: it is what N cores gave us, which
on a shared box depends on what the other tenants took. "CPU ms/doc" is the CPU time of this
process plus the pool workers (read from /proc: ``getrusage(RUSAGE_CHILDREN)`` misses
forkserver workers) per document, so the pool's own work (pickling, pipes, the parent's
threads) counts; "CPU speed-up" = procs x CPU ms/doc of "1, no pool" / CPU ms/doc of the
row: the speed-up the row's work allows on that many idle cores, independent of load. The
machine is shared, so each row prints the 1-minute load average measured right after it.

--memory signs a PDF of each size (MiB, written to bench/out/ in chunks) in a fresh child
process, once through ``PadesSigner.sign`` (bytes in, bytes out) and once through
``sign_stream`` (file in, spooled temp file out), and prints the seconds, the peak of
Python allocations (tracemalloc) and the peak RSS of the whole child process.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import itertools
import logging
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from signing import BatchSigner, PadesSigner, SigningPolicy, validate
from signing.keys import KeySource, Pkcs11KeySource, Pkcs12KeySource
from signing.pades import SignedPdf
from tests.support import pki as testpki
from tests.support.pdfs import make_pdf, write_large_pdf

OUT = Path(__file__).resolve().parent / "out" / "signing"
IN_FLIGHT = 8  # concurrent signatures per worker for B-T and up


# -- raw limits -------------------------------------------------------------------------


def _rate(fn: Callable[[], object], seconds: float = 0.5) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        n += 1
    return n / elapsed


def raw_limits(runs: int) -> dict[str, float]:
    data = b"x" * 32
    r2048 = rsa.generate_private_key(65537, 2048)
    r3072 = rsa.generate_private_key(65537, 3072)
    p256 = ec.generate_private_key(ec.SECP256R1())
    buf = os.urandom(64 * 1024 * 1024)
    out: dict[str, list[float]] = {k: [] for k in ("rsa2048", "rsa3072", "ec256", "sha256")}
    for _ in range(runs):
        out["rsa2048"].append(_rate(lambda: r2048.sign(data, padding.PKCS1v15(), hashes.SHA256())))
        out["rsa3072"].append(_rate(lambda: r3072.sign(data, padding.PKCS1v15(), hashes.SHA256())))
        out["ec256"].append(_rate(lambda: p256.sign(data, ec.ECDSA(hashes.SHA256()))))
        start = time.perf_counter()
        hashlib.sha256(buf).digest()
        out["sha256"].append(len(buf) / 1e6 / (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in out.items()}


def tsa_rate(url: str, n: int = 30) -> float:
    """Sequential time-stamp requests/s against the test TSA (one event loop, one session):
    the service limit that B-T and up run into on this box."""
    import asyncio

    import aiohttp
    from pyhanko.sign.timestamps import HTTPTimeStamper

    async def run() -> float:
        async with aiohttp.ClientSession() as session:
            stamper = HTTPTimeStamper(url, session=session)
            digest = hashlib.sha256(b"bench").digest()
            await stamper.async_timestamp(digest, "sha256")
            start = time.perf_counter()
            for _ in range(n):
                await stamper.async_timestamp(digest, "sha256")
            return n / (time.perf_counter() - start)

    return asyncio.run(run())


def delayed_tsa(target: str, latency: float) -> str:
    """Start a loopback proxy that forwards time-stamp requests to ``target`` after
    ``latency`` seconds, in a daemon thread; return its URL. It stands in for a TSA across a
    network (the test TSA answers from the same box), so the in-flight table can show
    whether waiting on the TSA is hidden."""
    import asyncio
    import threading

    import aiohttp
    from aiohttp import web

    port = _free_port()
    ready = threading.Event()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(latency)
        async with (
            aiohttp.ClientSession() as session,
            session.post(target, data=body, headers={"Content-Type": request.content_type}) as r,
        ):
            return web.Response(body=await r.read(), content_type=r.content_type)

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/tsa", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{port}/tsa"


def in_flight_rates(keys: KeySource, tsa_url: str, pdf: bytes, n: int) -> dict[int, float]:
    """B-T docs/s of one PadesSigner in this process with 1 and IN_FLIGHT threads."""
    from concurrent.futures import ThreadPoolExecutor

    out = {}
    with PadesSigner(SigningPolicy(level="B-T", tsa_url=tsa_url), keys) as signer:
        signer.sign(pdf)
        for threads in (1, IN_FLIGHT):
            start = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda _: signer.sign(pdf), range(n)))
            out[threads] = n / (time.perf_counter() - start)
    return out


# -- pool -----------------------------------------------------------------------------------


def _key_factory(spec: str, pki_dir: str) -> Callable[[], KeySource]:
    kind, alg = spec.split("-", 1)
    name = f"signer-{alg}"
    if kind == "pkcs12":
        return functools.partial(Pkcs12KeySource, Path(pki_dir) / "out" / f"{name}.pfx", None)
    return functools.partial(
        Pkcs11KeySource, testpki.SOFTHSM_MODULE, testpki.TOKEN_LABEL, name, testpki.PIN
    )


def _cpu_seconds(batch: BatchSigner | None = None) -> float:
    """CPU time used so far by this process and the pool's workers (Linux /proc).

    Not ``getrusage(RUSAGE_CHILDREN)``: that counts only children that have exited and
    been waited for, and forkserver workers are children of the fork server, not of us."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in batch.worker_pids() if batch is not None else ():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


SINGLE = 0
"""Key of the in-process row in :func:`measure`'s result: one PadesSigner, no pool."""


def _sign_in_process(signer: PadesSigner, level: str, pdf: bytes, docs: int) -> list[Any]:
    """The 1-process baseline: the same documents and results as a pool worker's, without
    the pool. Above B-B it keeps IN_FLIGHT signatures going, as a worker does."""
    if level == "B-B":
        return [signer.sign(pdf) for _ in range(docs)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(IN_FLIGHT) as threads:
        return list(threads.map(lambda _: signer.sign(pdf), range(docs)))


def _separate_child(
    spec: str,
    pki_dir: str,
    level: str,
    tsa_url: str,
    root_der: bytes,
    pdf: bytes,
    docs: int,
    barrier: Any,
    results: Any,
) -> None:
    """One of the "N, separate" processes: its own PadesSigner, no pool, no IPC per doc."""
    logging.disable(logging.ERROR)
    policy = SigningPolicy(level=level, tsa_url=tsa_url)  # type: ignore[arg-type]
    with PadesSigner(policy, _key_factory(spec, pki_dir)(), trust_roots=[root_der]) as signer:
        _sign_in_process(signer, level, pdf, 2)
        barrier.wait()
        start = time.process_time()
        _sign_in_process(signer, level, pdf, docs)
        results.put(time.process_time() - start)


def _separate(
    spec: str, cpki: Any, level: str, pdf: bytes, procs: int, docs: int
) -> tuple[float, float]:
    """docs/s and CPU ms/doc of ``procs`` independent single-signer processes sharing the
    documents: what the box gives N processes that never talk to each other (the ceiling
    for any pool). Start-up and warm-up are excluded (a barrier starts the clock)."""
    ctx = multiprocessing.get_context("forkserver")
    barrier, results = ctx.Barrier(procs + 1), ctx.Queue()
    share = docs // procs
    children = [
        ctx.Process(
            target=_separate_child,
            args=(
                spec, str(cpki.directory), level, cpki.tsa_url, cpki.root_der, pdf, share,
                barrier, results,
            ),
        )
        for _ in range(procs)
    ]  # fmt: skip
    for child in children:
        child.start()
    barrier.wait()
    start = time.perf_counter()
    cpu = sum(results.get(timeout=600) for _ in children)
    wall = time.perf_counter() - start
    for child in children:
        child.join()
    return share * procs / wall, 1000 * cpu / (share * procs)


def measure(
    spec: str, cpki: Any, level: str, pdf: bytes, procs: list[int], docs: int, runs: int
) -> dict[int, tuple[float, float]]:
    """Median (docs/s, CPU ms per doc) for one PadesSigner in this process (key
    :data:`SINGLE`), per pool size (key = workers) and for N separate processes (key = -N,
    see :func:`_separate`). Everything exists side by side and the runs alternate
    (single, 1, N, single, 1, N, ...), so a load spike on the shared box hits every column
    alike. CPU ms per doc counts this process and the pool workers, so the pool's own work
    (pickling, pipes, the parent's threads) is included; the single row does the same
    signatures and builds the same results, minus the pool."""
    policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
    keys = _key_factory(spec, str(cpki.directory))
    with contextlib.ExitStack() as stack:
        single = stack.enter_context(PadesSigner(policy, keys(), trust_roots=[cpki.root_der]))
        _sign_in_process(single, level, pdf, 2)  # reservation, dummy time-stamp, revinfo
        pools: dict[int, BatchSigner | None] = {SINGLE: None}
        for n in procs:
            batch = stack.enter_context(
                BatchSigner(
                    policy, keys, trust_roots=[cpki.root_der], processes=n, in_flight=IN_FLIGHT
                )
            )
            batch.warm_up()
            for _ in batch.sign_all([pdf] * (2 * n)):  # each worker: reservation, dummy TS
                pass
            pools[n] = batch
        separate = max(procs)
        rates: dict[int, list[float]] = {n: [] for n in [*pools, -separate]}
        cpu: dict[int, list[float]] = {n: [] for n in [*pools, -separate]}
        for _ in range(runs):
            rate, cpu_ms = _separate(spec, cpki, level, pdf, separate, docs)
            rates[-separate].append(rate)
            cpu[-separate].append(cpu_ms)
            for n, batch in pools.items():
                cpu_start, start = _cpu_seconds(batch), time.perf_counter()
                if batch is None:
                    results = _sign_in_process(single, level, pdf, docs)
                else:
                    results = list(batch.sign_all(itertools.repeat(pdf, docs)))
                rates[n].append(docs / (time.perf_counter() - start))
                cpu[n].append(1000 * (_cpu_seconds(batch) - cpu_start) / docs)
                assert all(isinstance(r, SignedPdf) for r in results), results[:1]
    return {n: (statistics.median(rates[n]), statistics.median(cpu[n])) for n in rates}


# -- memory ---------------------------------------------------------------------------------


def memory_child(size_mib: int, mode: str) -> None:
    """Runs in a fresh interpreter: sign one large PDF, print one table row."""
    import resource
    import tracemalloc

    from signing.devpki import ensure_dev_pki

    path = OUT / f"big-{size_mib}.pdf"
    pki = ensure_dev_pki(OUT / "dev-pki")
    with PadesSigner(SigningPolicy(), pki.key_source()) as signer:
        signer.sign(make_pdf())  # warm-up: CMS reservation
        tracemalloc.start()
        start = time.perf_counter()
        if mode == "bytes":
            out_size = len(signer.sign(path.read_bytes()).pdf)
        else:
            with (
                path.open("rb") as src,
                tempfile.SpooledTemporaryFile(8 * 2**20, dir=str(OUT)) as out,
            ):
                signer.sign_stream(src, out)
                out_size = out.seek(0, os.SEEK_END)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    assert out_size > path.stat().st_size
    print(
        f"| {size_mib} | {'sign (bytes)' if mode == 'bytes' else 'sign_stream (file)'} | "
        f"{seconds:.1f} | {peak / 2**20:.1f} | {rss / 1024:.0f} |",
        flush=True,
    )


def memory_table(sizes: list[int]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"load1 at start {os.getloadavg()[0]:.2f}")
    print("| file MiB | API | seconds | Python peak MiB (tracemalloc) | process peak RSS MiB |")
    print("|" + "---|" * 5)
    for size in sizes:
        path = OUT / f"big-{size}.pdf"
        write_large_pdf(path, size * 2**20)
        try:
            for mode in ("bytes", "stream"):
                subprocess.run(
                    [sys.executable, __file__, "--memory-child", f"{size}:{mode}"], check=True
                )
        finally:
            path.unlink()


# -- main -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer documents per cell")
    parser.add_argument("--levels", default="B-B,B-T,B-LT,B-LTA")
    parser.add_argument(
        "--sources", default="pkcs12-rsa2048,pkcs12-rsa3072,pkcs12-ec256,pkcs11-rsa2048"
    )
    parser.add_argument("--sizes", default="1page,5mb")
    parser.add_argument("--memory", help="file sizes in MiB, e.g. 200,1024")
    parser.add_argument(
        "--tsa-latency-ms",
        type=int,
        default=50,
        help="added TSA latency for the in-flight line (0: skip that line)",
    )
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        size, mode = args.memory_child.split(":")
        memory_child(int(size), mode)
        return
    if args.memory:
        memory_table([int(x) for x in args.memory.split(",")])
        return
    cores = os.cpu_count() or 1
    logging.disable(logging.ERROR)  # pyHanko logs expected LTV findings with tracebacks

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    cpki = testpki.build_pki(OUT / "pki", _free_port())
    testpki.start(cpki)
    try:
        os.environ["SOFTHSM2_CONF"] = str(cpki.softhsm_token().conf)  # inherited by workers
        pdfs = {"1page": make_pdf(), "5mb": make_pdf(pages=20, padding_bytes=5 * 2**20)}
        # Sanity: what we time validates at the level we claim.
        for level in args.levels.split(","):
            policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
            with PadesSigner(
                policy,
                _key_factory("pkcs12-rsa2048", str(cpki.directory))(),
                trust_roots=[cpki.root_der],
            ) as signer:
                check = validate(signer.sign(pdfs["1page"]).pdf, trust_roots=[cpki.root_der])
            assert check.valid and check.signatures[0].level == level, check.to_dict()

        raw = raw_limits(args.runs)
        inproc = []
        with PadesSigner(
            SigningPolicy(), _key_factory("pkcs12-rsa2048", str(cpki.directory))()
        ) as signer:
            signer.sign(pdfs["1page"])
            for _ in range(args.runs):
                start = time.perf_counter()
                for _ in range(200):
                    signer.sign(pdfs["1page"])
                inproc.append(200 / (time.perf_counter() - start))
        print(f"cores {cores}; load1 at start {os.getloadavg()[0]:.2f}; medians of {args.runs}")
        print(
            "raw limits, 1 thread: "
            + ", ".join(
                f"{k} {v:,.0f} {'MB/s' if k == 'sha256' else 'sign/s'}" for k, v in raw.items()
            )
        )
        print(f"test TSA (certomancer, single-threaded): {tsa_rate(cpki.tsa_url):.1f} stamps/s")
        print(
            f"B-B pkcs12-rsa2048 1-page, one PadesSigner in this process (no pool, no IPC): "
            f"{statistics.median(inproc):.1f} docs/s "
            f"({100 * statistics.median(inproc) / raw['rsa2048']:.2f} % of raw RSA-2048)"
        )
        if args.tsa_latency_ms and "B-T" in args.levels.split(","):
            slow_tsa = delayed_tsa(cpki.tsa_url, args.tsa_latency_ms / 1000)
            keys = _key_factory("pkcs12-rsa2048", str(cpki.directory))()
            rates = in_flight_rates(keys, slow_tsa, pdfs["1page"], 40 if args.quick else 80)
            print(
                f"B-T, one PadesSigner, TSA +{args.tsa_latency_ms} ms: "
                + ", ".join(f"{k} in flight {v:.1f} docs/s" for k, v in rates.items())
            )
        print()
        print(
            "rows: '1, no pool' is one PadesSigner in this process; 'k, pool' is "
            "BatchSigner with k workers (input and signed output cross the process boundary); "
            "'N, separate' is N independent processes, one PadesSigner each, no IPC: the "
            "most N processes can get from this box right now."
        )
        print(
            "wall speed-up = docs/s / docs/s of '1, no pool' (load-dependent); CPU speed-up = "
            "procs x CPU ms/doc of '1, no pool' / CPU ms/doc of the row (parent + workers): "
            "the speed-up the row's work allows on that many otherwise idle cores."
        )
        print()
        header = (
            "| level | key source | PDF | procs | docs/s | wall speed-up | CPU ms/doc "
            "| CPU speed-up | vs raw sign/s | load1 |"
        )
        print(header)
        print("|" + "---|" * 10)
        for level in args.levels.split(","):
            docs = {"B-B": 400, "B-T": 120, "B-LT": 60, "B-LTA": 60}[level]
            if args.quick:
                docs //= 4
            for spec in args.sources.split(","):
                if level != "B-B" and spec not in ("pkcs12-rsa2048", "pkcs11-rsa2048"):
                    continue  # above B-B the TSA/OCSP round trips decide, not the key
                for size in args.sizes.split(","):
                    pdf = pdfs[size]
                    n = docs if size == "1page" else max(docs // 4, 8)
                    measured = measure(spec, cpki, level, pdf, sorted({1, cores}), n, args.runs)
                    single, single_cpu = measured[SINGLE]
                    for key, (rate, cpu_ms) in measured.items():
                        procs = max(abs(key), 1)
                        label = (
                            "1, no pool"
                            if key == SINGLE
                            else f"{key}, pool"
                            if key > 0
                            else f"{procs}, separate"
                        )
                        limit = raw[spec.split("-", 1)[1]] * procs
                        print(
                            f"| {level} | {spec} | {size} | {label} | {rate:.1f} | "
                            f"{rate / single:.2f}x | {cpu_ms:.2f} | "
                            f"{procs * single_cpu / cpu_ms:.2f}x | "
                            f"{100 * rate / limit:.2f} % | {os.getloadavg()[0]:.2f} |",
                            flush=True,
                        )
        print(f"\nload1 at end {os.getloadavg()[0]:.2f}")
    finally:
        cpki.stop()


if __name__ == "__main__":
    main()
