"""Deposits computed in ingest processes (``ingest_processes`` > 0) answer exactly as in
process: receipts after durable storage, replays, conflicts and problems; a dead ingest
process costs one 503, never a false receipt; every worker shares one pool."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import pickle
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archive.errors import StorageUnavailableError
from archive.storage.fs import FsStorage
from ingest.errors import FieldProblem, IdempotencyConflictError, InvalidSubmissionError
from ingest.pipeline import IngestResult
from ingest.submission import Submission
from kluis.api.app import create_app
from kluis.api.ingest_frames import Failure, frame
from kluis.api.ingest_pool import IngestPool, IngestProcesses
from kluis.settings import KluisSettings
from kluis.wiring import Services
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
    back = Failure(type(invalid), invalid.args, dict(invalid.__dict__), "").rebuild()
    assert isinstance(back, InvalidSubmissionError)
    assert back.problems == invalid.problems and str(back) == str(invalid)
    conflict = IdempotencyConflictError("OVO1", "R-1", "aip-1")
    back = Failure(type(conflict), conflict.args, dict(conflict.__dict__), "").rebuild()
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


def test_idle_processes_that_die_cost_no_deposit(
    pooled: TestClient,
    token,  # type: ignore[no-untyped-def]
    pdf: bytes,
) -> None:
    # A deposit only waits in the socket's backlog for the replacement; one that a process
    # dies in the middle of is a 503 (test_a_process_dying_mid_deposit_is_a_503...).
    agency = token("agency", AGENCY_X)
    pool = pool_of(pooled)
    (killed,) = pool.pids()
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    stored = upload(pooled, agency, pdf, owner=OWNER_A, ref="D-1")
    assert stored.status_code == 201, stored.text  # type: ignore[attr-defined]
    for _ in range(100):  # the supervisor lists the replacement once it said it is ready
        if pool.pids() != [killed]:
            break
        time.sleep(0.05)
    (replacement,) = pool.pids()
    assert replacement not in (killed, None)
    services = pooled.app.state.services  # type: ignore[attr-defined]
    assert services.store.is_committed(stored.json()["aip_id"])  # type: ignore[attr-defined]


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


def _dies_on_first_deposit(
    settings: KluisSettings, listener: socket.socket, lifeline: object, ready: Any
) -> None:
    """An ingest process that starts, takes a deposit and dies in the middle of it."""
    ready.send(None)
    connection, _ = listener.accept()
    connection.recv(1 << 16)
    os._exit(3)


def _submission(ref: str) -> Submission:
    return Submission(
        agency_id=AGENCY_X, owner=OWNER_A, document_type="attest", title="t", agency_ref=ref
    )


def test_a_process_dying_mid_deposit_is_a_503_and_is_replaced(
    settings: KluisSettings, pdf: bytes
) -> None:
    processes = IngestProcesses(settings, 1, main=_dies_on_first_deposit)
    processes.start()
    try:
        pool = IngestPool(processes.address)
        (first,) = processes.pids()
        with pytest.raises(StorageUnavailableError):
            asyncio.run(pool.run_async(_submission("M-1"), pdf, None))
        # The next deposit waits in the socket's backlog for the replacement (which dies
        # the same way here); the blocking hand-over (the batch's) fails alike.
        with pytest.raises(StorageUnavailableError):
            pool.run(_submission("M-2"), pdf, None)
        for _ in range(600):  # its replacement starts
            if processes.pids() and processes.pids() != [first]:
                break
            time.sleep(0.1)
        (second,) = processes.pids()
        assert second not in (first, None)
    finally:
        processes.close()
    assert processes.pids() == []
    with pytest.raises(StorageUnavailableError, match="gone"):
        IngestPool(processes.address).run(_submission("M-3"), pdf, None)


def _exit_at_end_of(lifeline: Any) -> None:
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os._exit(0)


def _one_deposit_then_report(
    settings: KluisSettings, listener: socket.socket, lifeline: Any, ready: Any
) -> None:
    """An ingest process that answers each deposit with its own pid (as the failure's text)."""
    ready.send(None)
    threading.Thread(target=_exit_at_end_of, args=(lifeline,), daemon=True).start()
    while True:
        connection, _ = listener.accept()
        with connection:
            connection.recv(1 << 16)
            time.sleep(0.3)  # busy: the next connection must go to another process
            raw = pickle.dumps(Failure(RuntimeError, (str(os.getpid()),), {}, ""))
            connection.sendall(frame(raw))


def test_deposits_from_any_worker_go_to_whichever_process_is_idle(
    settings: KluisSettings, pdf: bytes
) -> None:
    # Two "workers" (pools on one address), four deposits at once: four processes.
    processes = IngestProcesses(settings, 4, main=_one_deposit_then_report)
    processes.start()
    try:
        workers = [IngestPool(processes.address), IngestPool(processes.address)]

        async def one(pool: IngestPool, n: int) -> str:
            try:
                await pool.run_async(_submission(f"S-{n}"), pdf, None)
            except RuntimeError as exc:
                return str(exc)
            raise AssertionError("the test process answers with a failure")

        async def all_at_once() -> list[str]:
            return await asyncio.gather(*(one(workers[n % 2], n) for n in range(4)))

        pids = asyncio.run(all_at_once())
        assert sorted(map(int, pids)) == sorted(p for p in processes.pids() if p is not None)
    finally:
        processes.close()


def test_closing_lets_the_deposit_in_hand_finish(
    settings: KluisSettings, services: Services, pdf: bytes
) -> None:
    processes = IngestProcesses(settings, 1)
    processes.start()
    pool = IngestPool(processes.address)
    before = set(services.storage.keys(""))
    results: list[IngestResult] = []
    thread = threading.Thread(
        target=lambda: results.append(pool.run(_submission("C-1"), pdf, None))
    )
    thread.start()
    for _ in range(500):  # until the deposit is in the process: it has stored something
        if set(services.storage.keys("")) - before:
            break
        time.sleep(0.01)
    started = time.monotonic()
    processes.close()
    assert time.monotonic() - started < 25  # it left by itself, not killed after 30 s
    thread.join(10)
    (result,) = results
    assert result.created and services.store.is_committed(result.receipt.aip_id)
    assert processes.pids() == []


def test_processes_opening_the_fs_store_at_once_all_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers and their ingest processes open the store together: each probes the root for
    # extended attributes, and another's removal of the shared probe must not fail it.
    def removed_already(path: object, name: str) -> None:
        raise OSError(errno.ENODATA, "No data available")

    monkeypatch.setattr(os, "removexattr", removed_already)
    FsStorage(tmp_path / "store")
