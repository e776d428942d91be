"""Throughput of PadesSigner (B-B, dev PKI RSA-3072) on a 1-page PDF, single thread.

usage: .venv/bin/python bench/signing.py [--n 200] [--runs 3] [--pdf-bytes 0]
Generates a throw-away dev PKI under bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signing import PadesSigner, SigningPolicy, ensure_dev_pki, validate
from tests.support.pdfs import make_pdf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pdf-bytes", type=int, default=0, help="incompressible padding")
    args = parser.parse_args()

    pki = ensure_dev_pki(Path(__file__).resolve().parent / "out" / "dev-pki")
    pdf = make_pdf(padding_bytes=args.pdf_bytes)
    with PadesSigner(SigningPolicy(), pki.key_source()) as signer:
        signed = signer.sign(pdf)  # warm-up; also measures the CMS reservation
        assert validate(signed.pdf, trust_roots=pki.trust_roots()).valid
        rates = []
        for _ in range(args.runs):
            start = time.perf_counter()
            for _ in range(args.n):
                signer.sign(pdf)
            rates.append(args.n / (time.perf_counter() - start))
    print(
        f"B-B RSA-3072, input {len(pdf)} B: median {statistics.median(rates):.1f} sig/s "
        f"(min {min(rates):.1f}, max {max(rates):.1f}; {args.runs}x{args.n}; "
        f"load1 {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
