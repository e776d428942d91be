"""`kluis serve` runs its jobs on its own, each under a lease: a stored document the index
missed becomes visible; while another instance holds the job's lease the job is skipped, and
the runs show in /metrics."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from archive.leases import Leases
from ingest.submission import Submission
from kluis.api.app import create_app
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from search.errors import IndexUnavailableError
from search.model import IndexDocument
from tests.conftest import AGENCY_X, OWNER_A


def test_the_scheduler_indexes_what_a_failed_index_update_missed(
    settings: KluisSettings,
    token,
    pdf: bytes,  # type: ignore[no-untyped-def]
) -> None:
    services = build_services(settings)
    try:

        def index_down(documents: list[IndexDocument]) -> None:
            raise IndexUnavailableError("tantivy", "down for the test")

        services.index.submit = index_down  # type: ignore[method-assign]
        receipt = services.ingestor.ingest(
            Submission(AGENCY_X, OWNER_A, "attest", "Attest", "SCHED-1"), pdf
        ).receipt  # acknowledged: stored, though not indexed
    finally:
        services.close()

    with TestClient(create_app(settings)) as client:
        citizen = token("citizen", OWNER_A)
        deadline = time.monotonic() + 10
        while True:
            listing = client.get("/v1/me/documents", headers=citizen).json()
            if listing["total"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert [d["id"] for d in listing["items"]] == [receipt.aip_id]


def _unindexed_document(settings: KluisSettings, pdf: bytes, ref: str) -> str:
    services = build_services(settings)
    try:

        def index_down(documents: list[IndexDocument]) -> None:
            raise IndexUnavailableError("tantivy", "down for the test")

        services.index.submit = index_down  # type: ignore[method-assign]
        return services.ingestor.ingest(
            Submission(AGENCY_X, OWNER_A, "attest", "Attest", ref), pdf
        ).receipt.aip_id
    finally:
        services.close()


def _runs(client: TestClient, outcome: str) -> float:
    text = client.get("/metrics").text
    line = 'kluis_job_runs_total{job="reconcile",outcome="' + outcome + '"}'
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_a_job_another_instance_holds_is_skipped_until_its_lease_is_released(
    data_dir: Path,
    token,
    pdf: bytes,  # type: ignore[no-untyped-def]
) -> None:
    settings = KluisSettings(data_dir=data_dir, reconcile_interval_seconds=0.2)
    aip_id = _unindexed_document(settings, pdf, "SCHED-2")
    services = build_services(settings)
    try:
        other = Leases(services.storage, holder="another-replica").acquire(
            "reconcile", timedelta(minutes=5)
        )
        with TestClient(create_app(settings)) as client:
            citizen = token("citizen", OWNER_A)
            time.sleep(1.5)
            assert client.get("/v1/me/documents", headers=citizen).json()["total"] == 0
            assert _runs(client, "busy") >= 2
            assert _runs(client, "ok") == 0
            other.release()
            deadline = time.monotonic() + 10
            while client.get("/v1/me/documents", headers=citizen).json()["total"] == 0:
                assert time.monotonic() < deadline, "reconcile never ran after the release"
                time.sleep(0.1)
            assert _runs(client, "ok") >= 1
            items = client.get("/v1/me/documents", headers=citizen).json()["items"]
            assert [d["id"] for d in items] == [aip_id]
    finally:
        services.close()
