"""A SIGKILL mid-ingest never leaves a half package visible, and nothing stored is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from ingest.reconcile import reconcile_ingest
from ingest.submission import Submission
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from search.model import Query
from tests.conftest import OWNER_A

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]


def crash(data_dir: Path, pdf_file: Path, point: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.crash_ingest", str(data_dir), str(pdf_file), point],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def kluis(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KLUIS_DATA_DIR=str(data_dir))
    return subprocess.run(
        [str(Path(sys.executable).parent / "kluis"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_crash_before_root_mets_leaves_nothing_visible(
    data_dir: Path, tmp_path: Path, pdf: bytes
) -> None:
    pdf_file = tmp_path / "doc.pdf"
    pdf_file.write_bytes(pdf)
    crash(data_dir, pdf_file, "before-root-mets")

    services = build_services(KluisSettings(data_dir=data_dir))
    try:
        assert list(services.store.aip_ids()) == []
        assert len(list(services.store.incomplete())) == 1
        services.index.refresh()
        assert services.index.search(Query()).total == 0
        # Its files are already under retention (attest: 10 years), so reconcile finishes
        # the package from its commit intent; the retry gets that package's receipt.
        [aip_id] = services.store.incomplete()
        report = reconcile_ingest(services.store, services.ledger, grace=timedelta(0))
        assert report.completed_packages == (aip_id,)
        assert report.discarded_packages == ()
        assert list(services.store.incomplete()) == []
        assert list(services.store.commit_intents()) == []
        assert services.store.verify(aip_id).ok
        retry = services.ingestor.ingest(
            Submission("OVO000001", OWNER_A, "attest", "Attest", "CRASH"), pdf
        )
        assert not retry.created
        assert retry.receipt.aip_id == aip_id
    finally:
        services.close()


def test_crash_after_store_is_made_visible_by_reindex(
    data_dir: Path, tmp_path: Path, pdf: bytes
) -> None:
    pdf_file = tmp_path / "doc.pdf"
    pdf_file.write_bytes(pdf)
    crash(data_dir, pdf_file, "after-store")

    services = build_services(KluisSettings(data_dir=data_dir))
    try:
        [aip_id] = list(services.store.aip_ids())
        services.index.refresh()
        assert services.index.search(Query()).total == 0
    finally:
        services.close()

    result = kluis(data_dir, "reindex")
    assert result.returncode == 0, result.stderr

    services = build_services(KluisSettings(data_dir=data_dir))
    try:
        services.index.refresh()
        page = services.index.search(Query(owner_key=services.keyer.key(OWNER_A)))
        assert [h.aip_id for h in page.hits] == [aip_id]
        # The agency's retry gets the receipt of the stored package.
        again = services.ingestor.ingest(
            Submission("OVO000001", OWNER_A, "attest", "Attest", "CRASH"), pdf
        )
        assert not again.created
        assert again.receipt.aip_id == aip_id
    finally:
        services.close()
