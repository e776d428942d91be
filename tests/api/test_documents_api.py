"""The walking skeleton over HTTP: agency deposits, citizen reads, strangers get nothing."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import upload
from tests.conftest import AGENCY_X, OWNER_A, OWNER_B
from tests.support import pdfs

PROBLEM = "application/problem+json"


def wait_listed(client: TestClient, headers: dict[str, str], count: int) -> httpx.Response:
    deadline = time.monotonic() + 3
    while True:
        response = client.get("/v1/me/documents", headers=headers)
        if response.json().get("total") == count or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_agency_to_citizen(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    agency = token("agency", AGENCY_X)
    created = upload(client, agency, pdf, owner=OWNER_A, ref="R1")
    assert created.status_code == 201, created.text
    receipt = created.json()
    assert receipt["signature_level"] == "B-B"

    retry = upload(client, agency, pdf, owner=OWNER_A, ref="R1")
    assert retry.status_code == 200
    assert retry.json() == receipt

    conflict = upload(client, agency, pdfs.make_pdf(["anders"]), owner=OWNER_A, ref="R1")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == PROBLEM

    citizen = token("citizen", OWNER_A)
    listing = wait_listed(client, citizen, 1)
    assert [d["id"] for d in listing.json()["items"]] == [receipt["aip_id"]]

    detail = client.get(f"/v1/me/documents/{receipt['aip_id']}", headers=citizen)
    assert detail.status_code == 200
    assert detail.json()["sha256"] == receipt["sha256"]

    content = client.get(f"/v1/me/documents/{receipt['aip_id']}/content", headers=citizen)
    assert content.status_code == 200
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["etag"] == f'"{receipt["sha256"]}"'
    assert content.content.startswith(pdf)

    found = client.get("/v1/me/documents", params={"q": "vergunning"}, headers=citizen)
    assert found.json()["total"] == 1


def test_nobody_reads_another_persons_document(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    receipt = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="R2").json()
    stranger = token("citizen", OWNER_B)
    for path in ("", "/content"):
        response = client.get(f"/v1/me/documents/{receipt['aip_id']}{path}", headers=stranger)
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
    assert wait_listed(client, stranger, 0).json()["total"] == 0
    # The same 404 as for an id that does not exist: ids reveal nothing.
    missing = client.get("/v1/me/documents/00000000-0000-4000-8000-000000000000", headers=stranger)
    assert missing.status_code == 404
    assert missing.json()["type"] == response.json()["type"]


@pytest.mark.parametrize(
    "path", ["/v1/me/documents", "/v1/me/documents/00000000-0000-4000-8000-000000000000"]
)
def test_no_token_is_401(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_expired_and_forged_tokens_are_401(client: TestClient, token) -> None:  # type: ignore[no-untyped-def]
    expired = token("citizen", OWNER_A, ttl_seconds=1, now=time.time() - 3600)
    assert client.get("/v1/me/documents", headers=expired).status_code == 401
    good = token("citizen", OWNER_A)["Authorization"]
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert client.get("/v1/me/documents", headers={"Authorization": forged}).status_code == 401


def test_wrong_role_is_403(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/v1/me/documents", headers=token("agency", AGENCY_X)).status_code == 403
    response = upload(client, token("citizen", OWNER_A), pdf, owner=OWNER_A, ref="R3")
    assert response.status_code == 403  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("make", "owner", "type", "field"),
    [
        (pdfs.javascript_pdf, OWNER_A, "attest", "file"),
        (pdfs.encrypted_pdf, OWNER_A, "attest", "file"),
        (pdfs.truncated_pdf, OWNER_A, "attest", "file"),
        (pdfs.not_a_pdf, OWNER_A, "attest", "file"),
        (pdfs.make_pdf, "12345678901", "attest", "owner"),
        (pdfs.make_pdf, OWNER_A, "onbekend", "type"),
    ],
)
def test_hostile_uploads_are_422_and_store_nothing(
    client: TestClient,
    token,
    services_of,
    make,
    owner: str,
    type: str,
    field: str,  # type: ignore[no-untyped-def]
) -> None:
    response = upload(client, token("agency", AGENCY_X), make(), owner=owner, ref="H", type=type)
    assert response.status_code == 422  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    assert field in {e["field"] for e in body["errors"]}
    stored = services_of(client).storage.keys("")
    # The scheduler's reconcile at start-up writes only its lease (leases/): no document.
    assert [k for k in stored if not k.startswith("leases/")] == []


def test_bad_metadata_json_is_422(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/v1/documents",
        headers=token("agency", AGENCY_X),
        files={"file": ("a.pdf", pdf, "application/pdf")},
        data={"metadata": "{not json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
