"""Deposits computed in ingest processes (``ingest_processes`` > 0) answer exactly as in
process: receipts after durable storage, replays, conflicts and problems; a dead ingest
process costs one 503, never a false receipt."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from ingest.errors import FieldProblem, IdempotencyConflictError, InvalidSubmissionError
from kluis.api.app import create_app
from kluis.api.ingest_pool import IngestPool, _Failure
from kluis.settings import KluisSettings
from tests.api.conftest import upload
from tests.conftest import AGENCY_X, OWNER_A
from tests.support import pdfs


@pytest.fixture
def pooled(settings: KluisSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"ingest_processes": 1}))) as c:
        yield c


def pool_of(client: TestClient) -> IngestPool:
    pool: IngestPool = client.app.state.ingest_pool  # type: ignore[attr-defined]
    return pool


def test_domain_errors_cross_back_with_their_data() -> None:
    invalid = InvalidSubmissionError([FieldProblem("owner", "bad check digits")])
    back = _Failure(type(invalid), invalid.args, dict(invalid.__dict__), "").rebuild()
    assert isinstance(back, InvalidSubmissionError)
    assert back.problems == invalid.problems and str(back) == str(invalid)
    conflict = IdempotencyConflictError("OVO1", "R-1", "aip-1")
    back = _Failure(type(conflict), conflict.args, dict(conflict.__dict__), "").rebuild()
    assert isinstance(back, IdempotencyConflictError) and str(back) == str(conflict)


def test_a_pooled_deposit_answers_as_in_process(
    pooled: TestClient,
    token,  # type: ignore[no-untyped-def]
    pdf: bytes,
) -> None:
    pool = pool_of(pooled)
    assert pool is not None
    agency = token("agency", AGENCY_X)
    first = upload(pooled, agency, pdf, owner=OWNER_A, ref="P-1")
    assert first.status_code == 201, first.text  # type: ignore[attr-defined]
    receipt = first.json()  # type: ignore[attr-defined]
    # Durable and readable by this process before the answer.
    services = pooled.app.state.services  # type: ignore[attr-defined]
    assert services.store.is_committed(receipt["aip_id"])
    again = upload(pooled, agency, pdf, owner=OWNER_A, ref="P-1")
    assert again.status_code == 200 and again.json() == receipt  # type: ignore[attr-defined]
    other = upload(pooled, agency, pdfs.make_pdf(["ander"]), owner=OWNER_A, ref="P-1")
    assert other.status_code == 409  # type: ignore[attr-defined]
    bad = upload(pooled, agency, pdf, owner="12345678901", ref="P-2")
    assert bad.status_code == 422  # type: ignore[attr-defined]
    body = bad.json()  # type: ignore[attr-defined]
    assert bad.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    assert [e["field"] for e in body["errors"]] == ["owner"]
    not_pdf = upload(pooled, agency, b"%PDF-1.7 nonsense", owner=OWNER_A, ref="P-3")
    assert not_pdf.status_code == 422  # type: ignore[attr-defined]
    # The deposit is audited by the API process, as in process.
    audited = [k for k in services.storage.keys("audit/")]
    assert len(audited) == 1


def test_a_dead_ingest_process_is_a_503_and_the_pool_recovers(
    pooled: TestClient,
    token,  # type: ignore[no-untyped-def]
    pdf: bytes,
) -> None:
    agency = token("agency", AGENCY_X)
    pool = pool_of(pooled)
    for pid in list(pool._pool._processes):  # the test kills them: reach into the executor
        os.kill(pid, signal.SIGKILL)
    dead = upload(pooled, agency, pdf, owner=OWNER_A, ref="D-1")
    assert dead.status_code == 503, dead.text  # type: ignore[attr-defined]
    assert "retry-after" in dead.headers  # type: ignore[attr-defined]
    services = pooled.app.state.services  # type: ignore[attr-defined]
    assert not [k for k in services.storage.keys("aips/")]
    retried = upload(pooled, agency, pdf, owner=OWNER_A, ref="D-1")
    assert retried.status_code == 201, retried.text  # type: ignore[attr-defined]
