"""`kluis serve` reconciles on its own: a stored document the index missed becomes visible."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

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
