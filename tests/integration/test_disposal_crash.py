"""A disposal execution SIGKILLed at random points resumes: nothing deleted twice, nothing
left behind, the certificate never lost.

Each round runs ``tests.support.crash_disposal`` in a fresh process that kills itself at a
random storage write or delete (intent records, exports, tombstones, object deletions,
journal records, the certificate and its legal holds), then the next round resumes the same
proposal. The last rounds kill right after the certificate JSON is stored and then run to
the end. Afterwards every due document is gone with exactly one tombstone and one
certificate row, the documents that were not due (or held) are intact, the certificate
verifies, and executing again changes nothing.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from archive.destruction import iter_tombstones
from ingest.submission import Submission
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from tests.conftest import AGENCY_X, OWNER_A

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).parents[2]
DUE, TRANSFER = 20, 4


def _run(data_dir: Path, proposal_id: str, point: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    return subprocess.run(
        [sys.executable, "-m", "tests.support.crash_disposal", str(data_dir), proposal_id, point],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_sigkilled_execution_resumes_without_loss_or_double_work(
    data_dir: Path, pdf: bytes
) -> None:
    settings = KluisSettings(data_dir=data_dir)
    services = build_services(settings)
    try:
        ingest = services.ingestor.ingest
        due = [ingest(Submission(AGENCY_X, OWNER_A, "attest", f"A{i}", f"D{i}",
                                 issued_on=date(2012, 1, 1 + i)), pdf).receipt.aip_id
               for i in range(DUE)]  # fmt: skip
        transfer = [ingest(Submission(AGENCY_X, OWNER_A, "besluit", f"B{i}", f"T{i}",
                                      issued_on=date(1990, 2, 1 + i)), pdf).receipt.aip_id
                    for i in range(TRANSFER)]  # fmt: skip
        young = [ingest(Submission(AGENCY_X, OWNER_A, "attest", "Y", f"Y{i}"), pdf).receipt.aip_id
                 for i in range(2)]  # fmt: skip
        held = due.pop()
        services.index.refresh()
        proposal = services.disposal.sweep("kluis").proposal
        assert proposal is not None and proposal.item_count == DUE + TRANSFER
        pid = proposal.proposal_id
        services.disposal.review(pid, "anna")
        services.disposal.approve(pid, "bart")
        services.holds.place(reason="claim", mandate="court", placed_by="anna",
                             document_ids=[held])  # fmt: skip
    finally:
        services.close()

    rng = random.Random(7)
    kills = 0
    for _ in range(12):
        done = _run(data_dir, pid, f"ops:{rng.randint(1, 25)}")
        if done.returncode == 0:
            break
        assert done.returncode == -9, done.stderr
        kills += 1
    assert kills >= 3
    killed = _run(data_dir, pid, "after-certificate-json")
    assert killed.returncode in (-9, 0), killed.stderr
    final = _run(data_dir, pid, "none")
    assert final.returncode == 0, final.stderr
    result = json.loads(final.stdout)
    assert (result["destroyed"], result["transferred"], result["skipped"]) == (
        DUE - 1, TRANSFER, 1,
    )  # fmt: skip

    services = build_services(settings)
    try:
        store, storage = services.store, services.storage
        for doc in due + transfer:
            assert not store.is_committed(doc)
            for prefix in (f"aips/{doc}/", f"events/{doc}/", f"versions/{doc}/"):
                assert list(storage.keys(prefix)) == [], prefix
        for doc in [*young, held]:
            assert store.verify(doc).ok
        tombs = [t.document_id for t in iter_tombstones(storage)]
        assert sorted(tombs) == sorted(due + transfer)
        cert = services.disposal.certificate(result["certificate_id"])
        rows = [r["document_id"] for r in cert.content["disposed"]]
        assert sorted(rows) == sorted(due + transfer)  # each exactly once
        assert [s["document_id"] for s in cert.content["skipped"]] == [held]
        assert services.disposal.verify(cert).ok
        assert list(storage.keys("certificates/")) == [
            f"certificates/{result['certificate_id']}.json",
            f"certificates/{result['certificate_id']}.p7s",
        ]
        assert services.disposal.execute(pid, "someone").certificate_id == result["certificate_id"]
        for doc in transfer:
            assert storage.exists(f"exports/{pid}/{doc}.tar")
    finally:
        services.close()
