"""Signing throughput: documents/s per PAdES level and key source, 1-page and ~5 MB PDFs,
1 process and all cores, next to the raw crypto limits measured in the same run.

usage: .venv/bin/python bench/signing.py [--runs 3] [--quick] [--levels B-B,B-T]
                                          [--sources pkcs12-rsa2048,pkcs11-rsa2048]

Everything is real: a certomancer PKI (TSA, OCSP, CRLs) on a loopback port and a SoftHSM2
token, both built under bench/out/ (git-ignored). Batches go through
signing.BatchSigner: each pool worker holds its own PadesSigner (parsed key or logged-in
PKCS#11 session, time-stamper) for its whole life; for B-T and up a worker keeps several
signatures in flight (threads) so TSA/OCSP latency is hidden. Input and signed output
cross the process boundary (pickled), as they would in a service. Cells are medians of
--runs runs; the machine is shared, so read the load average printed with the table.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import logging
import os
import shutil
import socket
import statistics
import sys
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
from tests.support.pdfs import make_pdf

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


# -- pool -----------------------------------------------------------------------------------


def _key_factory(spec: str, pki_dir: str) -> Callable[[], KeySource]:
    kind, alg = spec.split("-", 1)
    name = f"signer-{alg}"
    if kind == "pkcs12":
        return functools.partial(Pkcs12KeySource, Path(pki_dir) / "out" / f"{name}.pfx", None)
    return functools.partial(
        Pkcs11KeySource, testpki.SOFTHSM_MODULE, testpki.TOKEN_LABEL, name, testpki.PIN
    )


def measure(
    spec: str, cpki: Any, level: str, pdf: bytes, procs: int, docs: int, runs: int
) -> float:
    policy = SigningPolicy(level=level, tsa_url=cpki.tsa_url)  # type: ignore[arg-type]
    keys = _key_factory(spec, str(cpki.directory))
    with BatchSigner(
        policy, keys, trust_roots=[cpki.root_der], processes=procs, in_flight=IN_FLIGHT
    ) as batch:
        batch.warm_up()
        for _ in batch.sign_all([pdf] * (2 * procs)):  # each worker: reservation, dummy TS
            pass
        rates = []
        for _ in range(runs):
            start = time.perf_counter()
            results = list(batch.sign_all(itertools.repeat(pdf, docs)))
            rates.append(docs / (time.perf_counter() - start))
            assert all(isinstance(r, SignedPdf) for r in results), results[:1]
    return statistics.median(rates)


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
    parser.add_argument("--levels", default="B-B,B-T,B-LTA")
    parser.add_argument(
        "--sources", default="pkcs12-rsa2048,pkcs12-rsa3072,pkcs12-ec256,pkcs11-rsa2048"
    )
    parser.add_argument("--sizes", default="1page,5mb")
    args = parser.parse_args()
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
        print()
        header = "| level | key source | PDF | procs | docs/s | docs/s per proc | vs raw sign/s |"
        print(header)
        print("|" + "---|" * 7)
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
                    for procs in sorted({1, cores}):
                        rate = measure(spec, cpki, level, pdf, procs, n, args.runs)
                        limit = raw[spec.split("-", 1)[1]] * procs
                        print(
                            f"| {level} | {spec} | {size} | {procs} | {rate:.1f} | "
                            f"{rate / procs:.1f} | {100 * rate / limit:.2f} % |",
                            flush=True,
                        )
        print(f"\nload1 at end {os.getloadavg()[0]:.2f}")
    finally:
        cpki.stop()


if __name__ == "__main__":
    main()
