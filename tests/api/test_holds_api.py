"""Archivists place and lift legal holds over HTTP (identity from the token); agencies
deliver the event date of their own documents."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from archive import layout
from kluis.settings import KluisSettings
from retention.selection_list import Period
from tests.api.conftest import upload
from tests.conftest import AGENCY_X, AGENCY_Y, OWNER_A

LIST = """
version = "api-1"
[types.attest]
retention = "P10Y"
action = "destroy"
[types.dossier]
retention = "P5Y"
trigger = "event:closure"
action = "destroy"
"""


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> KluisSettings:
    path = tmp_path / "list.toml"
    path.write_text(LIST, encoding="utf-8")
    return KluisSettings(data_dir=data_dir, selection_list=path)


@pytest.fixture
def world(client: TestClient, token: Any, pdf: bytes) -> Iterator[dict[str, Any]]:
    agency = token("agency", AGENCY_X)
    ids = []
    for n, kind in enumerate(["attest", "dossier"]):
        created = upload(client, agency, pdf, owner=OWNER_A, ref=f"r{n}", type=kind)
        assert created.status_code == 201, created.text  # type: ignore[attr-defined]
        ids.append(created.json()["aip_id"])  # type: ignore[attr-defined]
    yield {"attest": ids[0], "dossier": ids[1], "agency": agency}


def test_place_list_show_lift(
    client: TestClient, token: Any, world: dict[str, Any], services_of: Any
) -> None:
    peeters = token("archivist", "a.peeters")
    body = {"document_ids": [world["attest"]], "reason": "Onderzoek", "mandate": "PV 2026/9"}
    placed = client.post("/v1/archive/holds", headers=peeters, json=body)
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert hold["placed_by"] == "a.peeters" and hold["active"]

    storage = services_of(client).storage
    root = layout.aip_key(world["attest"], layout.ROOT_METS)
    assert storage.stat(root).legal_hold
    state = client.get(f"/v1/archive/documents/{world['attest']}/retention", headers=peeters)
    assert state.json()["holds"] == [hold["id"]]
    assert state.json()["list_version"] == "api-1"

    listed = client.get("/v1/archive/holds?active=true", headers=peeters).json()
    assert [h["id"] for h in listed["items"]] == [hold["id"]]
    shown = client.get(f"/v1/archive/holds/{hold['id']}", headers=peeters).json()
    assert shown == hold

    janssens = token("archivist", "b.janssens")
    lifted = client.post(
        f"/v1/archive/holds/{hold['id']}/lift", headers=janssens, json={"reason": "klaar"}
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_by"] == "b.janssens" and not lifted.json()["active"]
    assert not storage.stat(root).legal_hold
    assert client.get("/v1/archive/holds?active=true", headers=peeters).json()["items"] == []


def test_invalid_holds_are_refused(client: TestClient, token: Any, world: dict[str, Any]) -> None:
    peeters = token("archivist", "a.peeters")
    unknown = str(uuid.uuid4())
    body = {"document_ids": [unknown, "../etc"], "reason": "r", "mandate": "m"}
    refused = client.post("/v1/archive/holds", headers=peeters, json=body)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "2 unknown document id(s)" in refused.json()["errors"][0]["message"]
    no_mandate = client.post(
        "/v1/archive/holds", headers=peeters, json={"document_ids": [world["attest"]]}
    )
    assert no_mandate.status_code == 422
    assert client.get(f"/v1/archive/holds/{unknown}", headers=peeters).status_code == 404
    assert client.get("/v1/archive/holds/not-a-uuid", headers=peeters).status_code == 404
    by_query = client.post(
        "/v1/archive/holds",
        headers=peeters,
        json={"query": {"type": "dossier"}, "reason": "r", "mandate": "m"},
    )
    assert by_query.status_code == 201, by_query.text
    assert by_query.json()["document_ids"] == [world["dossier"]]


def test_agency_delivers_the_event_date_of_its_own_document(
    client: TestClient, token: Any, world: dict[str, Any]
) -> None:
    url = f"/v1/documents/{world['dossier']}/retention-trigger"
    today = datetime.now(UTC).date()  # documents were issued today (the default)
    body = {"event": "closure", "date": today.isoformat()}
    other = client.post(url, headers=token("agency", AGENCY_Y), json=body)
    assert other.status_code == 404
    done = client.post(url, headers=world["agency"], json=body)
    assert done.status_code == 200, done.text
    assert done.json()["retention_until"] == Period(years=5).after(today).isoformat()
    assert client.post(url, headers=world["agency"], json=body).status_code == 200
    earlier = (today - timedelta(days=1)).isoformat()
    changed = client.post(url, headers=world["agency"], json={**body, "date": earlier})
    assert changed.status_code in (409, 422)  # another date is never accepted
    wrong = client.post(
        f"/v1/documents/{world['attest']}/retention-trigger", headers=world["agency"], json=body
    )
    assert wrong.status_code == 422
