"""Agencies: idempotency, Content-Digest, batch, receipts, hostile uploads."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import upload
from tests.api.hostile import content_bomb, zeros_bomb
from tests.conftest import AGENCY_X, AGENCY_Y, OWNER_A, OWNER_B
from tests.support import pdfs

PROBLEM = "application/problem+json"


def stored_packages(services) -> list[str]:  # type: ignore[no-untyped-def]
    skip = ("audit/", "leases/")  # leases: the scheduler's reconcile at start-up
    return [k for k in services.storage.keys("") if not k.startswith(skip)]


def multipart(pdf: bytes, meta: dict[str, object]) -> tuple[bytes, str]:
    request = httpx.Request(
        "POST",
        "http://x/v1/documents",
        files={"file": ("a.pdf", pdf, "application/pdf")},
        data={"metadata": json.dumps(meta)},
    )
    body = request.read()
    return body, request.headers["content-type"]


def digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def test_idempotency_key_header(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    agency = token("agency", AGENCY_X)
    meta = {"owner": OWNER_A, "type": "attest", "title": "Attest"}

    def send(data: bytes, key: str, **extra: str) -> httpx.Response:
        return client.post(
            "/v1/documents",
            headers={**agency, "Idempotency-Key": key},
            files={"file": ("a.pdf", data, "application/pdf")},
            data={"metadata": json.dumps({**meta, **extra})},
        )

    first = send(pdf, "K-1")
    assert first.status_code == 201, first.text
    assert first.json()["agency_ref"] == "K-1"
    assert send(pdf, "K-1").json() == first.json()
    assert send(pdf, "K-1").status_code == 200
    assert send(pdfs.make_pdf(["ander"]), "K-1").status_code == 409
    assert send(pdf, "K-1", title="Ander attest").status_code == 409  # other metadata
    assert send(pdf, "K-1", ref="K-2").status_code == 422  # ref and key disagree
    missing = client.post(
        "/v1/documents",
        headers=agency,
        files={"file": ("a.pdf", pdf, "application/pdf")},
        data={"metadata": json.dumps(meta)},
    )
    assert missing.status_code == 422


def test_content_digest_is_checked_before_anything_is_stored(
    client: TestClient,
    token,
    services_of,
    pdf: bytes,  # type: ignore[no-untyped-def]
) -> None:
    agency = token("agency", AGENCY_X)
    body, ctype = multipart(pdf, {"owner": OWNER_A, "type": "attest", "title": "A", "ref": "D1"})
    wrong = client.post(
        "/v1/documents",
        headers={**agency, "Content-Type": ctype, "Content-Digest": digest(body + b"x")},
        content=body,
    )
    assert wrong.status_code == 400
    assert wrong.headers["content-type"] == PROBLEM
    assert wrong.json()["type"].endswith("/digest-mismatch")
    assert stored_packages(services_of(client)) == []
    malformed = client.post(
        "/v1/documents",
        headers={**agency, "Content-Type": ctype, "Content-Digest": "sha-256=nope"},
        content=body,
    )
    assert malformed.status_code == 400
    right = client.post(
        "/v1/documents",
        headers={**agency, "Content-Type": ctype, "Content-Digest": digest(body)},
        content=body,
    )
    assert right.status_code == 201, right.text


def test_batch_reports_per_item(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    agency = token("agency", AGENCY_X)
    items = [
        {"owner": OWNER_A, "type": "attest", "title": "Een", "ref": "B1"},
        {"owner": "12345678901", "type": "attest", "title": "Fout", "ref": "B2"},
        {"owner": OWNER_B, "type": "attest", "title": "Twee", "ref": "B3"},
        {"owner": OWNER_B, "type": "attest", "title": "Drie", "ref": "B4"},
        {"owner": OWNER_B, "type": "attest", "title": "Geen ref"},
    ]
    files = [
        ("files", ("1.pdf", pdf, "application/pdf")),
        ("files", ("2.pdf", pdf, "application/pdf")),
        ("files", ("3.pdf", pdfs.make_pdf(["drie"]), "application/pdf")),
        ("files", ("4.pdf", pdfs.javascript_pdf(), "application/pdf")),
        ("files", ("5.pdf", pdf, "application/pdf")),
    ]
    response = client.post(
        "/v1/documents:batch", headers=agency, files=files, data={"metadata": json.dumps(items)}
    )
    assert response.status_code == 200, response.text
    results = response.json()["items"]
    assert [r["status"] for r in results] == [201, 422, 201, 422, 422]
    assert results[1]["problem"]["type"].endswith("/invalid-submission")
    assert results[0]["receipt"]["agency_ref"] == "B1"
    # A retry of the whole batch replays the good ones.
    again = client.post(
        "/v1/documents:batch", headers=agency, files=files, data={"metadata": json.dumps(items)}
    )
    assert [r["status"] for r in again.json()["items"]] == [200, 422, 200, 422, 422]
    mismatch = client.post(
        "/v1/documents:batch",
        headers=agency,
        files=files[:2],
        data={"metadata": json.dumps(items)},
    )
    assert mismatch.status_code == 422


def test_receipt_only_for_the_sending_agency(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    receipt = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="R").json()  # type: ignore[attr-defined]
    url = f"/v1/documents/{receipt['aip_id']}/receipt"
    assert client.get(url, headers=token("agency", AGENCY_X)).json() == receipt
    other = client.get(url, headers=token("agency", AGENCY_Y))
    assert other.status_code == 404
    assert other.headers["content-type"] == PROBLEM
    assert client.get(url, headers=token("citizen", OWNER_A)).status_code == 403


def _hostile_bodies(pdf: bytes) -> dict[str, dict[str, object]]:
    meta = {"owner": OWNER_A, "type": "attest", "title": "A", "ref": "H"}
    return {
        "zip bomb of zeros": {"files": {"file": ("a.pdf", zeros_bomb(300), "application/pdf")}},
        "zip bomb of text operators": {
            "files": {"file": ("a.pdf", content_bomb(40), "application/pdf")}
        },
        "huge metadata": {
            "files": {"file": ("a.pdf", pdf, "application/pdf")},
            "data": {"metadata": json.dumps({**meta, "title": "x" * 100_000})},
        },
        "huge title": {
            "files": {"file": ("a.pdf", pdf, "application/pdf")},
            "data": {"metadata": json.dumps({**meta, "title": "x" * 600})},
        },
        "wrong content type of the part": {"files": {"file": ("a.pdf", pdf, "image/png")}},
        "html pretending to be a pdf": {
            "files": {"file": ("a.pdf", b"<html><script>x</script>", "application/pdf")}
        },
    }


@pytest.mark.parametrize(
    "case",
    [
        "zip bomb of zeros",
        "zip bomb of text operators",
        "huge metadata",
        "huge title",
        "wrong content type of the part",
        "html pretending to be a pdf",
    ],
)
def test_hostile_uploads_get_4xx_and_store_nothing(
    client: TestClient,
    token,
    services_of,
    pdf: bytes,
    case: str,  # type: ignore[no-untyped-def]
) -> None:
    spec = _hostile_bodies(pdf)[case]
    data = spec.get("data") or {
        "metadata": json.dumps({"owner": OWNER_A, "type": "attest", "title": "A", "ref": "H"})
    }
    response = client.post(
        "/v1/documents",
        headers=token("agency", AGENCY_X),
        files=spec["files"],  # type: ignore[arg-type]
        data=data,  # type: ignore[arg-type]
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM
    assert stored_packages(services_of(client)) == []


def test_wrong_request_content_type_is_415(client: TestClient, token) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/documents", headers=token("agency", AGENCY_X), json={"owner": OWNER_A}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
