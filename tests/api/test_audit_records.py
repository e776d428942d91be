"""Audit records are durable before the read is answered: both objects of a record go out in
one write, concurrent records are all kept, and a failed write refuses the read (503)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from fastapi.testclient import TestClient

from archive.errors import StorageUnavailableError
from archive.model import StoredObject
from archive.storage.base import NewObject
from archive.storage.fs import FsStorage
from kluis.audit import AuditLog
from kluis.errors import AuditUnavailableError
from tests.api.conftest import upload
from tests.conftest import AGENCY_X, OWNER_A

OWNER_KEY = "k" * 64


class SlowFs(FsStorage):
    """A real filesystem store whose writes take ``delay`` (a slow disk), or fail after it
    while ``failing`` is set (a disk that went away)."""

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        super().__init__(root)
        self.delay = delay
        self.failing = False
        self.writes: list[str] = []

    def _slow(self, keys: list[str]) -> None:
        time.sleep(self.delay)
        self.writes.extend(keys)
        if self.failing:
            raise StorageUnavailableError("fs", "the disk went away")

    def put(self, key: str, data: BinaryIO, **kw: Any) -> StoredObject:
        self._slow([key])
        return super().put(key, data, **kw)

    def put_new(
        self, objects: Sequence[NewObject], *, retain_until: datetime | None = None
    ) -> None:
        self._slow([o.key for o in objects])
        super().put_new(objects, retain_until=retain_until)


def record_at_once(audit: AuditLog, count: int) -> list[BaseException | None]:
    start = threading.Barrier(count)
    outcomes: list[BaseException | None] = [None] * count

    def read(i: int) -> None:
        start.wait()
        try:
            audit.record(
                action="read-content",
                document_id=f"doc-{i}",
                actor_role="owner",
                actor="owner",
                client_id="portal",
                owner_key=OWNER_KEY,
            )
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=read, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_concurrent_records_are_all_stored(tmp_path: Path) -> None:
    storage = SlowFs(tmp_path / "s", delay=0.05)
    audit = AuditLog(storage)
    assert record_at_once(audit, 20) == [None] * 20
    assert len(storage.writes) == 40  # two objects per read: audit/ and access-log/
    events, _ = audit.for_owner(OWNER_KEY, limit=100)
    assert sorted(e.document_id for e in events) == sorted(f"doc-{i}" for i in range(20))
    everything, _ = audit.all(limit=100)
    assert len(everything) == 20


def test_a_failed_write_fails_its_record(tmp_path: Path) -> None:
    storage = SlowFs(tmp_path / "s", delay=0.05)
    storage.failing = True
    audit = AuditLog(storage)
    outcomes = record_at_once(audit, 10)
    assert all(isinstance(o, AuditUnavailableError) for o in outcomes), outcomes
    assert list(storage.keys("")) == []
    storage.failing = False
    assert record_at_once(audit, 3) == [None] * 3
    assert len(audit.for_owner(OWNER_KEY)[0]) == 3


def test_no_read_is_answered_without_its_record(
    client: TestClient,
    token,  # type: ignore[no-untyped-def]
    pdf: bytes,
    tmp_path: Path,
) -> None:
    receipt = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="G1").json()  # type: ignore[attr-defined]
    url = f"/v1/me/documents/{receipt['aip_id']}/content"
    citizen = token("citizen", OWNER_A)
    storage = SlowFs(tmp_path / "audit", delay=0.02)
    audit = AuditLog(storage)
    client.app.state.audit = audit  # type: ignore[attr-defined]

    storage.failing = True
    refused = [client.get(url, headers=citizen) for _ in range(3)]
    assert [r.status_code for r in refused] == [503] * 3
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    assert all(b"%PDF" not in r.content for r in refused)
    assert "retry-after" in refused[0].headers
    assert list(storage.keys("")) == []

    storage.failing = False
    answered: list[int] = []

    def read() -> None:
        answered.append(client.get(url, headers=citizen).status_code)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answered == [200] * 8
    log, _ = audit.all(limit=100)
    assert len(log) == 8  # one durable record for every answer
    assert all(e.action == "read-content" for e in log)


def test_a_deposit_is_recorded_for_archivists_only(tmp_path: Path) -> None:
    storage = SlowFs(tmp_path / "s")
    audit = AuditLog(storage)
    audit.record(
        action="write",
        document_id="doc-1",
        actor_role="agency",
        actor=AGENCY_X,
        client_id=None,
        owner_key=OWNER_KEY,
        owner_visible=False,
    )
    assert [k.split("/")[0] for k in storage.writes] == ["audit"]
    assert [e.action for e in audit.all()[0]] == ["write"]
    assert audit.for_owner(OWNER_KEY)[0] == []


def test_a_deposit_is_recorded_with_its_agency_and_survives_a_failed_record(
    client: TestClient,
    token,  # type: ignore[no-untyped-def]
    pdf: bytes,
    tmp_path: Path,
) -> None:
    agency = token("agency", AGENCY_X)
    first = upload(client, agency, pdf, owner=OWNER_A, ref="W1")
    assert first.status_code == 201, first.text  # type: ignore[attr-defined]
    audit: AuditLog = client.app.state.audit  # type: ignore[attr-defined]
    (event,), _ = audit.all()
    assert (event.action, event.actor_role, event.actor) == ("write", "agency", AGENCY_X)
    assert event.document_id == first.json()["aip_id"]  # type: ignore[attr-defined]
    replay = upload(client, agency, pdf, owner=OWNER_A, ref="W1")
    assert replay.status_code == 200 and len(audit.all()[0]) == 1  # type: ignore[attr-defined]

    # The record is best effort: the package is durable and carries its PREMIS event.
    storage = SlowFs(tmp_path / "audit")
    storage.failing = True
    client.app.state.audit = AuditLog(storage)  # type: ignore[attr-defined]
    second = upload(client, agency, pdf, owner=OWNER_A, ref="W2")
    assert second.status_code == 201, second.text  # type: ignore[attr-defined]
    assert storage.writes and list(storage.keys("")) == []
