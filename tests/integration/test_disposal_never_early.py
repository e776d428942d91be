"""Nothing is destroyed before its time or while held, whichever door asks.

One approved proposal holds three documents whose retention ended. After approval one is
put under legal hold and the retention of another is extended by a new selection list;
execution then comes through the API, the CLI or the scheduler's disposal job, on fs and
on the real Ceph RGW. Only the third may go: the other two must come out intact (bytes,
fixity, index), reported as skipped with the reason, absent from the signed certificate,
and every one of their objects must still refuse a direct delete on the storage layer.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archive.destruction import read_tombstone
from archive.errors import ObjectLockedError, PackageNotFoundError
from kluis.api.app import create_app
from kluis.auth import Role, mint_dev_token
from kluis.settings import DEFAULT_SELECTION_LIST, KluisSettings, S3Settings
from kluis.wiring import Services, build_services
from tests.cli.test_cli import KLUIS, ROOT
from tests.conftest import AGENCY_X, OWNER_A
from tests.support.s3 import s3_server

ISSUED = "2010-01-04"  # attest P10Y and brief P5Y: both ended long ago
NEW_VERSION = "dev-2026-never-early"
HOLD_ARGS = ("--reason", "Onderzoek 2026/3", "--mandate", "Art. 12")
BRIEF_END = date(2060, 1, 4)  # brief P50Y in the new list


@dataclass
class Archive:
    """One Kluis installation (settings for this process, env for `kluis` processes)."""

    settings: KluisSettings
    env: dict[str, str]

    def kluis(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KLUIS, *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )

    def ok(self, *args: str) -> str:
        done = self.kluis(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def bearer(self, role: Role, sub: str) -> str:
        return mint_dev_token(
            self.settings.data_dir, role=role, subject=sub,
            issuer=self.settings.auth.issuer, audience=self.settings.auth.audience,
        )  # fmt: skip

    def headers(self, role: Role, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer(role, sub)}"}

    @contextmanager
    def api(self) -> Iterator[TestClient]:
        with TestClient(create_app(self.settings)) as client:
            yield client

    def use_list(self, path: Path) -> None:
        """Point this installation at a new selection list (as the recompute help says)."""
        self.settings = self.settings.model_copy(update={"selection_list": path})
        self.env["KLUIS_SELECTION_LIST"] = str(path)


def _env(data_dir: Path) -> dict[str, str]:
    """The `kluis` processes' environment: this data directory, no stray KLUIS_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLUIS_")}
    return {**env, "KLUIS_DATA_DIR": str(data_dir), "COLUMNS": "200"}


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def archive(request: pytest.FixtureRequest, data_dir: Path) -> Archive:
    env = _env(data_dir)
    if request.param == "fs":
        return Archive(KluisSettings(data_dir=data_dir, storage="fs"), env)
    server = s3_server()
    s3 = S3Settings(
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,  # type: ignore[arg-type]
        bucket=server.new_bucket(),
        guard_bucket=server.new_guard_bucket(),
    )
    env.update(
        KLUIS_STORAGE="s3",
        KLUIS_S3__ENDPOINT=s3.endpoint,
        KLUIS_S3__ACCESS_KEY=s3.access_key,
        KLUIS_S3__SECRET_KEY=s3.secret_key.get_secret_value(),
        KLUIS_S3__BUCKET=s3.bucket,
        KLUIS_S3__GUARD_BUCKET=s3.guard_bucket or "",
    )
    return Archive(KluisSettings(data_dir=data_dir, storage="s3", s3=s3), env)


def _deposit(client: TestClient, agency: dict[str, str], pdf: bytes, ref: str, type: str) -> str:
    meta = {"owner": OWNER_A, "type": type, "title": "Oud stuk", "ref": ref, "issued_on": ISSUED}
    done = client.post(
        "/v1/documents",
        headers=agency,
        files={"file": ("a.pdf", pdf, "application/pdf")},
        data={"metadata": json.dumps(meta)},
    )
    assert done.status_code == 201, done.text
    aip_id: str = done.json()["aip_id"]
    return aip_id


def _ingest_three(archive: Archive, pdf: bytes) -> tuple[tuple[str, str, str], dict[str, bytes]]:
    """held (attest), extended (brief), due (attest): all three due when proposed. Also
    the archived (signed) PDF of each, as stored right after ingest."""
    with archive.api() as client:
        agency = archive.headers("agency", AGENCY_X)
        held = _deposit(client, agency, pdf, "NE-HELD", "attest")
        extended = _deposit(client, agency, pdf, "NE-EXT", "brief")
        due = _deposit(client, agency, pdf, "NE-DUE", "attest")
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        services.index.refresh()
        archived = {}
        for doc in (held, extended, due):
            with services.store.open_pdf(services.store.resolve(doc)) as stream:
                archived[doc] = stream.read()
            assert archived[doc].startswith(pdf[:8])
    return (held, extended, due), archived


def _new_list(tmp_path: Path) -> Path:
    """The default list in a new edition whose ``brief`` is kept 50 years, not 5."""
    text = DEFAULT_SELECTION_LIST.read_text()
    text = text.replace('version = "dev-2026-1"', f'version = "{NEW_VERSION}"')
    old_brief = '[types.brief]\ntitle = "Brief"\nretention = "P5Y"'
    assert old_brief in text and NEW_VERSION in text
    text = text.replace(old_brief, '[types.brief]\ntitle = "Brief"\nretention = "P50Y"')
    path = tmp_path / "selectielijst-2.toml"
    path.write_text(text)
    return path


def _recompute(archive: Archive, tmp_path: Path, extended: str) -> None:
    """`kluis retention recompute` (the only door for a new list) extends the brief."""
    new_list = _new_list(tmp_path)
    token = archive.bearer("archivist", "anna")
    report = json.loads(
        archive.ok("retention", "recompute", str(new_list), "--json", "--token", token)
    )
    assert report["list_version"] == NEW_VERSION
    assert extended in json.dumps(report["extended"])
    archive.use_list(new_list)


def _proposal_of(items: Any) -> set[str]:
    return {i["document_id"] for i in items}


def _through_api(archive: Archive, tmp_path: Path, docs: tuple[str, str, str]) -> dict[str, Any]:
    held, extended, due = docs
    anna, bart = archive.headers("archivist", "anna"), archive.headers("archivist", "bart")
    with archive.api() as client:
        swept = client.post("/v1/archive/disposal/sweep", headers=anna)
        assert swept.status_code == 200, swept.text
        pid = swept.json()["proposal"]["id"]
        items = client.get(f"/v1/archive/disposal/proposals/{pid}/items", headers=anna).json()
        assert _proposal_of(items["items"]) == set(docs)
        assert client.post(f"/v1/archive/disposal/proposals/{pid}/review",
                           headers=anna).status_code == 200  # fmt: skip
        approved = client.post(f"/v1/archive/disposal/proposals/{pid}/approve", headers=bart)
        assert approved.json()["state"] == "approved", approved.text
        hold = client.post(
            "/v1/archive/holds",
            headers=anna,
            json={"document_ids": [held], "reason": "Onderzoek 2026/3", "mandate": "Art. 12"},
        )
        assert hold.status_code == 201, hold.text
    _recompute(archive, tmp_path, extended)
    with archive.api() as client:
        carla = archive.headers("archivist", "carla")
        executed = client.post(f"/v1/archive/disposal/proposals/{pid}/execute", headers=carla)
        assert executed.status_code == 200, executed.text
        result: dict[str, Any] = executed.json()
    return {**result, "hold_id": hold.json()["id"]}


def _through_cli(archive: Archive, tmp_path: Path, docs: tuple[str, str, str]) -> dict[str, Any]:
    held, extended, _ = docs
    anna, bart = archive.bearer("archivist", "anna"), archive.bearer("archivist", "bart")
    pid = json.loads(archive.ok("retention", "sweep", "--token", anna))["id"]
    shown = archive.ok("retention", "proposals", pid, "--items", "--token", anna)
    assert all(d in shown for d in docs)
    archive.ok("retention", "review", pid, "--token", anna)
    archive.ok("retention", "approve", pid, "--token", bart)
    hold = json.loads(archive.ok("retention", "holds", "place", held, *HOLD_ARGS, "--token", anna))
    _recompute(archive, tmp_path, extended)
    result: dict[str, Any] = json.loads(archive.ok("retention", "execute", pid, "--token", bart))
    return {**result, "hold_id": hold["id"]}


def _through_job(archive: Archive, tmp_path: Path, docs: tuple[str, str, str]) -> dict[str, Any]:
    held, extended, _ = docs
    anna, bart = archive.bearer("archivist", "anna"), archive.bearer("archivist", "bart")
    archive.ok("jobs", "run", "sweep")
    [proposal] = json.loads(archive.ok("retention", "proposals", "--json", "--token", anna))
    pid = proposal["id"]
    archive.ok("retention", "review", pid, "--token", anna)
    archive.ok("retention", "approve", pid, "--token", bart)
    hold = json.loads(archive.ok("retention", "holds", "place", held, *HOLD_ARGS, "--token", anna))
    _recompute(archive, tmp_path, extended)
    summary = json.loads(archive.ok("jobs", "run", "disposal", "--json"))
    assert summary["executed"] == [pid] and not summary["failed"], summary
    [certificate_id] = summary["certificates"]
    return {
        "proposal_id": pid,
        "certificate_id": certificate_id,
        "destroyed": summary["destroyed"],
        "skipped": summary["skipped"],
        "hold_id": hold["id"],
    }


DOORS = {"api": _through_api, "cli": _through_cli, "job": _through_job}


@contextmanager
def _services(archive: Archive) -> Iterator[Services]:
    services = build_services(archive.settings)
    try:
        services.index.refresh()
        yield services
    finally:
        services.close()


def _assert_intact(services: Services, document_id: str, archived: bytes) -> None:
    aip_id = services.store.resolve(document_id)
    with services.store.open_pdf(aip_id) as stream:
        assert stream.read() == archived
    assert services.store.verify(aip_id).ok
    assert services.index.get(document_id) is not None
    assert read_tombstone(services.storage, document_id) is None


def _assert_every_object_refuses_delete(services: Services, document_id: str) -> None:
    keys = services.store.document_keys(document_id)
    assert len(keys) > 5
    for key in keys:
        with pytest.raises(ObjectLockedError):
            services.storage.delete(key)


@pytest.mark.parametrize("door", sorted(DOORS))
def test_only_what_may_go_goes_whichever_door_executes(
    archive: Archive, door: str, pdf: bytes, tmp_path: Path
) -> None:
    docs, archived = _ingest_three(archive, pdf)
    held, extended, due = docs
    result = DOORS[door](archive, tmp_path, docs)
    assert (result["destroyed"], result["skipped"]) == (1, 2), result

    with _services(archive) as services:
        # The two that may not go yet are whole: bytes, fixity, index, no tombstone ...
        for survivor in (held, extended):
            _assert_intact(services, survivor, archived[survivor])
        # ... and storage says why.
        today = datetime.now(UTC).date()
        held_state = services.records.state(held)
        assert held_state.holds == (result["hold_id"],) and held_state.on_hold
        assert held_state.retention_until is not None and held_state.retention_until < today
        ext_state = services.records.state(extended)
        assert ext_state.list_version == NEW_VERSION and not ext_state.on_hold
        assert ext_state.retention_until == BRIEF_END and not ext_state.is_due(today)
        assert ext_state.locked_until is not None and ext_state.locked_until >= BRIEF_END

        # The third is gone: no package, a tombstone, not in the index.
        with pytest.raises(PackageNotFoundError):
            services.store.resolve(due)
        tomb = read_tombstone(services.storage, due)
        assert tomb is not None and tomb.proposal_id == result["proposal_id"]
        assert services.index.get(due) is None

        # The certificate names only the third, reports the others with the reason and
        # verifies against the archive's trust roots.
        certificate = services.disposal.certificate(result["certificate_id"])
        content = certificate.content
        assert [r["document_id"] for r in content["disposed"]] == [due]
        skipped = {s["document_id"]: s["reason"] for s in content["skipped"]}
        assert set(skipped) == {held, extended}
        assert "legal hold" in skipped[held] and result["hold_id"] in skipped[held]
        assert skipped[extended].startswith(f"not due before {BRIEF_END.isoformat()}")
        check = services.disposal.verify(certificate)
        assert check.intact and check.valid and check.trusted

        # Directly on the storage layer: every object of both survivors refuses (the held
        # one by its legal hold only, its retention having ended; the other by its lock).
        for survivor in (held, extended):
            _assert_every_object_refuses_delete(services, survivor)
        for survivor in (held, extended):
            _assert_intact(services, survivor, archived[survivor])


def test_nobody_but_two_archivists_can_get_a_proposal_executed(data_dir: Path, pdf: bytes) -> None:
    env = _env(data_dir)
    archive = Archive(KluisSettings(data_dir=data_dir, storage="fs"), env)
    docs, archived = _ingest_three(archive, pdf)
    anna_h, bart_h = archive.headers("archivist", "anna"), archive.headers("archivist", "bart")
    anna = archive.bearer("archivist", "anna")
    url = "/v1/archive/disposal/proposals/{}/{}".format

    # One person, two doors: reviewed over HTTP, approved on the command line ...
    with archive.api() as client:
        first = client.post("/v1/archive/disposal/sweep", headers=anna_h).json()["proposal"]
        assert client.post(url(first["id"], "review"), headers=anna_h).status_code == 200
    same = archive.kluis("retention", "approve", first["id"], "--token", anna)
    assert same.returncode == 77 and "different archivist" in same.stderr
    with archive.api() as client:
        rejected = client.post(url(first["id"], "reject"), headers=bart_h)
        assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
    # ... and reviewed on the command line, approved over HTTP.
    pid = json.loads(archive.ok("retention", "sweep", "--token", anna))["id"]
    archive.ok("retention", "review", pid, "--token", anna)
    with archive.api() as client:
        again = client.post(url(pid, "approve"), headers=anna_h)
        assert again.status_code == 403 and again.json()["type"].endswith("/four-eyes")
        assert client.post(url(pid, "execute"), headers=anna_h).status_code == 409

        # Approved by a second archivist: still nobody but an archivist may execute it.
        assert client.post(url(pid, "approve"), headers=bart_h).json()["state"] == "approved"
        outsiders = {
            "citizen": archive.headers("citizen", OWNER_A),
            "agency": archive.headers("agency", AGENCY_X),
            "nobody": {},
            "forged": {"Authorization": "Bearer not-a-jwt"},
        }
        for who, headers in outsiders.items():
            denied = client.post(url(pid, "execute"), headers=headers)
            assert denied.status_code in (401, 403), (who, denied.text)
    for token in ("", archive.bearer("citizen", OWNER_A), archive.bearer("agency", AGENCY_X)):
        args = ("retention", "execute", pid) + (("--token", token) if token else ())
        assert archive.kluis(*args).returncode == 77, token

    with _services(archive) as services:
        assert services.disposal.status(pid).state == "approved"
        for doc in docs:
            _assert_intact(services, doc, archived[doc])
