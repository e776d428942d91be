"""Portals: filters, signature report, content with ETag/Range, the access log."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient

from tests.api.conftest import upload
from tests.conftest import AGENCY_X, OWNER_A, OWNER_B
from tests.support import pdfs

PROBLEM = "application/problem+json"


def wait_total(client: TestClient, headers: dict[str, str], count: int, **params: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 5
    while True:
        body = client.get("/v1/me/documents", headers=headers, params=params).json()
        if body.get("total") == count or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.05)


def test_listing_filters_and_paging(client: TestClient, token) -> None:  # type: ignore[no-untyped-def]
    agency = token("agency", AGENCY_X)
    for i in range(5):
        title = "Vergunning bouwen" if i == 0 else f"Attest {i}"
        response = client.post(
            "/v1/documents",
            headers=agency,
            files={"file": ("a.pdf", pdfs.make_pdf([title]), "application/pdf")},
            data={
                "metadata": json.dumps(
                    {
                        "owner": OWNER_A,
                        "type": "attest",
                        "title": title,
                        "ref": f"L{i}",
                        "issued_on": f"202{i}-03-01",
                    }
                )
            },
        )
        assert response.status_code == 201, response.text
    citizen = token("citizen", OWNER_A)
    assert wait_total(client, citizen, 5)["total"] == 5
    page1 = client.get("/v1/me/documents", headers=citizen, params={"limit": 2}).json()
    page2 = client.get(
        "/v1/me/documents", headers=citizen, params={"limit": 2, "cursor": page1["next_cursor"]}
    ).json()
    assert len(page1["items"]) == len(page2["items"]) == 2
    assert not {d["id"] for d in page1["items"]} & {d["id"] for d in page2["items"]}
    dated = client.get(
        "/v1/me/documents",
        headers=citizen,
        params={"issued_from": "2021-01-01", "issued_to": "2022-12-31"},
    ).json()
    assert dated["total"] == 2
    assert (
        client.get("/v1/me/documents", headers=citizen, params={"type": "onbekend"}).json()["total"]
        == 0
    )
    assert (
        client.get("/v1/me/documents", headers=citizen, params={"q": "bouwen"}).json()["total"] == 1
    )
    assert wait_total(client, token("citizen", OWNER_B), 0)["total"] == 0


def test_detail_content_range_and_access_log(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    receipt = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="C1").json()  # type: ignore[attr-defined]
    doc = receipt["aip_id"]
    citizen = token("citizen", OWNER_A)
    assert client.get("/v1/me/access-log", headers=citizen).json()["items"] == []

    detail = client.get(f"/v1/me/documents/{doc}", headers=citizen).json()
    assert detail["signature_report"]["valid"] is True

    url = f"/v1/me/documents/{doc}/content"
    full = client.get(url, headers=citizen)
    assert full.status_code == 200
    assert full.headers["content-disposition"].startswith("attachment; filename=")
    assert full.headers["accept-ranges"] == "bytes"
    etag = full.headers["etag"]
    body = full.content

    part = client.get(url, headers={**citizen, "Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == body[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(body)}"
    tail = client.get(url, headers={**citizen, "Range": "bytes=-5"})
    assert tail.content == body[-5:]
    stale = client.get(url, headers={**citizen, "Range": "bytes=0-3", "If-Range": '"other"'})
    assert stale.status_code == 200
    bad = client.get(url, headers={**citizen, "Range": f"bytes={len(body)}-"})
    assert bad.status_code == 416
    assert bad.headers["content-type"] == PROBLEM
    cached = client.get(url, headers={**citizen, "If-None-Match": etag})
    assert cached.status_code == 304

    # Someone else reads nothing, and their attempt is no read of A's document.
    assert client.get(url, headers=token("citizen", OWNER_B)).status_code == 404

    client.get(f"/v1/archive/documents/{doc}", headers=token("archivist", "a.peeters"))
    log = client.get("/v1/me/access-log", headers=citizen).json()["items"]
    actions = [(e["action"], e["actor_role"]) for e in log]
    assert actions.count(("read-content", "owner")) == 4  # 200, 206, 206, 200
    assert ("read-metadata", "owner") in actions
    assert actions[0] == ("read-metadata", "archivist")  # newest first
    assert log[0]["actor"] == "a.peeters"
    assert all(e["client_id"] == "kluis-cli" for e in log)
    assert client.get("/v1/me/access-log", headers=token("citizen", OWNER_B)).json()["items"] == []

    page = client.get("/v1/me/access-log", headers=citizen, params={"limit": 2}).json()
    more = client.get(
        "/v1/me/access-log", headers=citizen, params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert len(page["items"]) == len(more["items"]) == 2
    assert page["items"][1]["at"] >= more["items"][0]["at"]


def test_no_owner_number_in_storage_keys_index_or_logs(
    client: TestClient,
    token,
    services_of,
    pdf: bytes,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level("DEBUG")
    receipt = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="N1").json()  # type: ignore[attr-defined]
    citizen = token("citizen", OWNER_A)
    client.get(f"/v1/me/documents/{receipt['aip_id']}", headers=citizen)
    client.get(f"/v1/me/documents/{receipt['aip_id']}/content", headers=citizen)
    client.get("/v1/me/documents", headers=citizen, params={"q": OWNER_A})
    services = services_of(client)
    keys = list(services.storage.keys(""))
    assert keys and not [k for k in keys if OWNER_A in k]
    for key in keys:
        if key.startswith(("audit/", "access-log/")):
            with services.storage.open(key) as f:
                assert OWNER_A.encode() not in f.read()
    from kluis.observability import JsonFormatter

    formatter = JsonFormatter()
    assert not [r for r in caplog.records if OWNER_A in formatter.format(r)]
    index_files = [p for p in (services.settings.data_dir / "index").rglob("*") if p.is_file()]
    assert not [p for p in index_files if OWNER_A.encode() in p.read_bytes()]


def test_archivist_detail_search_and_audit(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    receipt = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="A1").json()  # type: ignore[attr-defined]
    archivist = token("archivist", "a.peeters")
    detail = client.get(f"/v1/archive/documents/{receipt['aip_id']}", headers=archivist).json()
    assert {e["type"] for e in detail["events"]} >= {"ingestion", "digital signature generation"}
    assert detail["agency_ref"] == "A1"
    again = client.get(f"/v1/archive/documents/{receipt['aip_id']}", headers=archivist).json()
    assert [r["actor"] for r in again["reads"]] == ["a.peeters", "a.peeters"]
    deadline = time.monotonic() + 5
    while True:
        found = client.get("/v1/archive/search", headers=archivist, params={"q": "vergunning"})
        if found.json()["total"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found.json()["facets"]["agency_id"] == {AGENCY_X: 1}
    audit = client.get("/v1/archive/audit", headers=archivist).json()["items"]
    assert {e["action"] for e in audit} == {"write", "read-metadata"}
    writes = client.get("/v1/archive/audit", headers=archivist, params={"action": "write"})
    assert [e["actor"] for e in writes.json()["items"]] == [AGENCY_X]
