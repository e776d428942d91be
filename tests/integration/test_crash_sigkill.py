"""Crash safety, proven: 50 SIGKILLs at random moments of a looping ingest, on fs and on s3.

A zygote process (``tests.support.crash_ingest zygote``) has everything imported; each round
it forks a child that ingests references ``R-<n>`` in a loop, and this test SIGKILLs the child
after a random delay, so kills land anywhere: while signing, between object writes, between
the commit marker and ``seal``, while indexing, between the receipt and the next claim. The
next round starts again at the reference after the last acknowledged one, so interrupted
references are retried (as an agency would).

Afterwards: every acknowledged document is committed, readable and intact (fixity of every
file, the PDF's SHA-256 equals the receipt's); every committed package is intact (nothing
half-written is visible); reconcile removes every incomplete package and stale claim and
seals every committed package; each reference then yields exactly one package.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from archive.storage.s3 import S3Storage
from ingest.reconcile import reconcile_ingest
from ingest.submission import Submission
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from tests.support.s3 import s3_server

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
KILLS = 50


def _env(backend: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    env["KLUIS_DATA_DIR"] = str(data_dir)
    if backend == "s3":
        server = s3_server()
        env.update(
            KLUIS_STORAGE="s3",
            KLUIS_S3__ENDPOINT=server.endpoint,
            KLUIS_S3__ACCESS_KEY=server.access_key,
            KLUIS_S3__SECRET_KEY=server.secret_key,
            KLUIS_S3__BUCKET=server.new_bucket(),
            KLUIS_S3__GUARD_BUCKET=server.new_guard_bucket(),
        )
    return env


def _settings(env: dict[str, str], **overrides: object) -> KluisSettings:
    values: dict[str, object] = {"data_dir": Path(env["KLUIS_DATA_DIR"])}
    if env.get("KLUIS_STORAGE") == "s3":
        values["storage"] = "s3"
        values["s3"] = {
            "endpoint": env["KLUIS_S3__ENDPOINT"],
            "access_key": env["KLUIS_S3__ACCESS_KEY"],
            "secret_key": env["KLUIS_S3__SECRET_KEY"],
            "bucket": env["KLUIS_S3__BUCKET"],
            "guard_bucket": env["KLUIS_S3__GUARD_BUCKET"],
            **overrides,
        }
    return KluisSettings(**values)  # type: ignore[arg-type]


class Zygote:
    def __init__(self, env: dict[str, str], pdf_file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_ingest", "zygote", str(pdf_file)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._line() == "READY"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        return line.strip()

    def round(self, start: int, delay: float) -> list[str]:
        """Run a child from reference ``start``, SIGKILL it after ``delay`` s, return its lines."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"run {start}\n")
        self.proc.stdin.flush()
        first = self._line()
        assert first.startswith("PID "), first
        pid = int(first.split()[1])
        assert self._line() == "UP"  # services built: kill somewhere in the ingest loop
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        lines: list[str] = []
        while not (line := self._line()).startswith("DEAD "):
            lines.append(line)
        status = int(line.split()[2])
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, line
        return lines

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def crash_env(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[dict[str, str]]:
    yield _env(request.param, data_dir)


def test_fifty_sigkills_lose_nothing_acknowledged(
    crash_env: dict[str, str], tmp_path: Path, pdf: bytes
) -> None:
    pdf_file = tmp_path / "doc.pdf"
    pdf_file.write_bytes(pdf)
    rng = random.Random(int(os.environ.get("KLUIS_CRASH_SEED", "4")))
    acked: dict[str, tuple[str, str]] = {}
    attempted: set[str] = set()
    next_ref = 0
    zygote = Zygote(crash_env, pdf_file)
    try:
        for _ in range(KILLS):
            lines = zygote.round(next_ref, rng.uniform(0.0, 0.4))
            attempted.add(f"R-{next_ref}")
            for line in lines:
                verb, ref, *rest = line.split()
                attempted.add(ref)
                if verb == "ACK":
                    aip_id, sha256, _ = rest
                    if ref in acked:  # a retry of an acknowledged reference: same package
                        assert acked[ref] == (aip_id, sha256)
                    acked[ref] = (aip_id, sha256)
                    next_ref = max(next_ref, int(ref[2:]) + 1)
    finally:
        zygote.close()
    assert len(acked) >= 5, f"only {len(acked)} ingests acknowledged in {KILLS} rounds"

    services = build_services(_settings(crash_env, guard_timeout_seconds=0.001))
    try:
        store = services.store
        # 1. Every acknowledged document is committed, readable and intact.
        for ref, (aip_id, sha256) in acked.items():
            report = store.verify(aip_id)
            assert report.ok, (ref, report.problems)
            manifest = store.manifest(aip_id)
            assert manifest.metadata.agency_ref == ref
            assert manifest.pdf.sha256 == sha256
            with store.open_pdf(aip_id) as handle:
                assert handle.read().startswith(b"%PDF")
        # 2. Nothing half-written is visible: every committed package is whole.
        committed = list(store.aip_ids())
        for aip_id in committed:
            assert store.verify(aip_id).ok, aip_id
        # 3. Reconcile removes leftovers and seals what was committed but not sealed.
        reconcile_ingest(store, services.ledger, grace=timedelta(0))
        assert list(store.incomplete()) == []
        for claim in services.ledger.claims():
            assert store.is_committed(claim.aip_id), claim
        for aip_id in committed:
            assert store.seal(aip_id) == 0, f"{aip_id} not sealed by reconcile"
        # 4. Retrying every attempted reference now yields exactly one package each.
        packages_by_ref: dict[str, str] = {}
        for ref in sorted(attempted):
            result = services.ingestor.ingest(
                Submission("OVO000001", "85073003328", "attest", f"Attest {ref[2:]}", ref), pdf
            )
            if ref in acked:
                assert not result.created and result.receipt.aip_id == acked[ref][0]
            packages_by_ref[ref] = result.receipt.aip_id
        # A child may commit a reference and die before reporting it: such packages count
        # too. What matters is that no reference has two packages.
        refs = [store.manifest(a).metadata.agency_ref for a in store.aip_ids()]
        assert len(refs) == len(set(refs)), "a reference has two packages"
        assert set(packages_by_ref) <= set(refs)
        if isinstance(services.storage, S3Storage):
            assert services.storage.guard_bucket is not None
    finally:
        services.close()
