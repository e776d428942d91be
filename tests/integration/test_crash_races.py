"""Exactly once: racing ingests of one agency reference make one package, on fs and on s3.

The store's conditional create decides (``O_EXCL``-style link on fs; on s3 ``If-None-Match: *``,
through a guard bucket on Ceph, which ignores the header in versioned buckets).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.errors import IngestInProgressError
from ingest.pipeline import IngestResult
from ingest.submission import Submission
from kluis.settings import KluisSettings
from kluis.wiring import Services, build_services
from tests.conftest import AGENCY_X, OWNER_A
from tests.support.s3 import s3_server

pytestmark = pytest.mark.integration
RACERS = 6


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def racing_services(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Services]:
    if request.param == "s3":
        server = s3_server()
        settings = KluisSettings(
            data_dir=data_dir,
            storage="s3",
            s3={  # type: ignore[arg-type]
                "endpoint": server.endpoint,
                "access_key": server.access_key,
                "secret_key": server.secret_key,
                "bucket": server.new_bucket(),
                "guard_bucket": server.new_guard_bucket(),
            },
        )
    else:
        settings = KluisSettings(data_dir=data_dir)
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


def test_racing_ingests_of_one_reference_make_one_package(
    racing_services: Services, pdf: bytes
) -> None:
    barrier = threading.Barrier(RACERS)
    results: list[IngestResult] = []
    errors: list[BaseException] = []

    def ingest() -> None:
        submission = Submission(AGENCY_X, OWNER_A, "attest", "Attest", "RACE-1")
        barrier.wait()
        for _ in range(50):  # a loser may be told "in progress, retry later"
            try:
                results.append(racing_services.ingestor.ingest(submission, pdf))
                return
            except IngestInProgressError:
                continue
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=ingest) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == RACERS
    assert sum(r.created for r in results) == 1
    assert len({r.receipt.aip_id for r in results}) == 1
    store = racing_services.store
    assert list(store.aip_ids()) == [results[0].receipt.aip_id]
    assert list(store.incomplete()) == []
    assert store.verify(results[0].receipt.aip_id).ok
