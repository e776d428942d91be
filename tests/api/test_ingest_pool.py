"""Deposits computed in ingest processes (``ingest_processes`` > 0) answer exactly as in
process: receipts after durable storage, replays, conflicts and problems; a dead ingest
process costs one 503, never a false receipt."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import pickle
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from archive.errors import StorageUnavailableError
from archive.storage.fs import FsStorage
from ingest.errors import FieldProblem, IdempotencyConflictError, InvalidSubmissionError
from ingest.submission import Submission
from kluis.api.app import create_app
from kluis.api.ingest_pool import _HEADER, IngestPool, _Failure
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
    # The ingest process wrote the deposit's audit record with it (once: not for the replay).
    (event,), _ = pooled.app.state.audit.all()  # type: ignore[attr-defined]
    assert (event.action, event.actor, event.document_id) == ("write", AGENCY_X, receipt["aip_id"])


def test_a_dead_ingest_process_is_a_503_and_the_pool_recovers(
    pooled: TestClient,
    token,  # type: ignore[no-untyped-def]
    pdf: bytes,
) -> None:
    agency = token("agency", AGENCY_X)
    pool = pool_of(pooled)
    for pid in pool.pids():
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    dead = upload(pooled, agency, pdf, owner=OWNER_A, ref="D-1")
    assert dead.status_code == 503, dead.text  # type: ignore[attr-defined]
    assert "retry-after" in dead.headers  # type: ignore[attr-defined]
    services = pooled.app.state.services  # type: ignore[attr-defined]
    assert not [k for k in services.storage.keys("aips/")]
    retried = upload(pooled, agency, pdf, owner=OWNER_A, ref="D-1")
    assert retried.status_code == 201, retried.text  # type: ignore[attr-defined]


def test_a_pooled_batch_answers_and_records_per_item(
    pooled: TestClient,
    token,  # type: ignore[no-untyped-def]
    pdf: bytes,
) -> None:
    # The batch handler runs in a thread and waits on the pool (IngestPool.run).
    items = [
        {"owner": OWNER_A, "type": "attest", "title": "een", "ref": "PB-1"},
        {"owner": "12345678901", "type": "attest", "title": "twee", "ref": "PB-2"},
    ]
    files = [("files", (f"{i}.pdf", pdf, "application/pdf")) for i in range(2)]
    response = pooled.post(
        "/v1/documents:batch",
        headers=token("agency", AGENCY_X),
        files=files,
        data={"metadata": json.dumps(items)},
    )
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["status"] for r in results] == [201, 422]
    (event,), _ = pooled.app.state.audit.all()  # type: ignore[attr-defined]
    assert event.document_id == results[0]["receipt"]["aip_id"]


def _dies_on_first_deposit(settings: KluisSettings, sock: socket.socket) -> None:
    """An ingest process that starts, takes a deposit and dies in the middle of it."""
    with sock:
        sock.sendall(_HEADER.pack(len(_READY)) + _READY)
        sock.recv(1 << 16)
        os._exit(3)


_READY = pickle.dumps(None)


def test_a_process_dying_mid_deposit_is_a_503_and_is_replaced(
    settings: KluisSettings, pdf: bytes
) -> None:
    submission = Submission(
        agency_id=AGENCY_X, owner=OWNER_A, document_type="attest", title="t", agency_ref="M-1"
    )

    async def scenario() -> None:
        pool = IngestPool(settings, 1, main=_dies_on_first_deposit)
        await pool.start()
        try:
            (first,) = pool.pids()
            with pytest.raises(StorageUnavailableError):
                await pool.run_async(submission, pdf, None)
            # The next deposit waits for the replacement (which dies the same way here).
            with pytest.raises(StorageUnavailableError):
                await asyncio.wait_for(pool.run_async(submission, pdf, None), 60)
            for _ in range(600):  # its replacement starts
                if pool.pids():
                    break
                await asyncio.sleep(0.1)
            (second,) = pool.pids()
            assert second != first
        finally:
            await pool.close()
        assert pool.pids() == []

    asyncio.run(scenario())


def test_processes_opening_the_fs_store_at_once_all_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers and their ingest processes open the store together: each probes the root for
    # extended attributes, and another's removal of the shared probe must not fail it.
    def removed_already(path: object, name: str) -> None:
        raise OSError(errno.ENODATA, "No data available")

    monkeypatch.setattr(os, "removexattr", removed_already)
    FsStorage(tmp_path / "store")
