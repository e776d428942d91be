"""Every endpoint x every kind of caller: who may do what, and no cross-owner read.

The table below must name every route of the app (a test checks it), so a new endpoint
cannot ship without its row.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from kluis.api.app import create_app
from kluis.auth import mint_dev_token
from kluis.settings import KluisSettings
from tests.conftest import AGENCY_X, AGENCY_Y, OWNER_A, OWNER_B
from tests.support import pdfs

CALLERS = (
    "none",
    "expired",
    "wrong_audience",
    "citizen_a",
    "citizen_b",
    "agency_x",
    "agency_y",
    "archivist",
)
ANON = {"none": 401, "expired": 401, "wrong_audience": 401}
SECRET_TITLE = "Geheim matrixdocument"

_counter = itertools.count()


def _expect(**allowed: int) -> dict[str, int]:
    """401 for bad tokens, 403 for the wrong role, unless ``allowed`` says otherwise."""
    return {c: ANON.get(c, allowed.get(c, 403)) for c in CALLERS}


def _upload(client: TestClient, headers: dict[str, str], doc: str) -> httpx.Response:
    return client.post(
        "/v1/documents",
        headers=headers,
        files={"file": ("a.pdf", pdfs.make_pdf(["matrix"]), "application/pdf")},
        data={
            "metadata": json.dumps(
                {"owner": OWNER_A, "type": "attest", "title": "M", "ref": f"m{next(_counter)}"}
            )
        },
    )


def _batch(client: TestClient, headers: dict[str, str], doc: str) -> httpx.Response:
    return client.post(
        "/v1/documents:batch",
        headers=headers,
        files=[("files", ("a.pdf", pdfs.make_pdf(["matrix"]), "application/pdf"))],
        data={
            "metadata": json.dumps(
                [{"owner": OWNER_B, "type": "attest", "title": "M", "ref": f"b{next(_counter)}"}]
            )
        },
    )


def _get(path: str) -> Callable[[TestClient, dict[str, str], str], httpx.Response]:
    def call(client: TestClient, headers: dict[str, str], doc: str) -> httpx.Response:
        return client.get(path.format(doc=doc), headers=headers)

    return call


def _post(path: str) -> Callable[[TestClient, dict[str, str], str], httpx.Response]:
    def call(client: TestClient, headers: dict[str, str], doc: str) -> httpx.Response:
        return client.post(path.format(doc=doc), headers=headers)

    return call


def _place_hold(client: TestClient, headers: dict[str, str], doc: str) -> httpx.Response:
    body = {"document_ids": [doc], "reason": "matrix", "mandate": "test"}
    return client.post("/v1/archive/holds", headers=headers, json=body)


def _on_hold(
    method: str, suffix: str, body: dict[str, str] | None = None
) -> Callable[[TestClient, dict[str, str], str], httpx.Response]:
    """Place a hold as the caller (only an archivist can), then call the hold's route."""

    def call(client: TestClient, headers: dict[str, str], doc: str) -> httpx.Response:
        placed = _place_hold(client, headers, doc)
        hold_id = placed.json()["id"] if placed.status_code == 201 else str(uuid.uuid4())
        return client.request(
            method, f"/v1/archive/holds/{hold_id}{suffix}", headers=headers, json=body
        )

    return call


def _trigger(client: TestClient, headers: dict[str, str], doc: str) -> httpx.Response:
    body = {"event": "closure", "date": "2025-01-01"}
    return client.post(f"/v1/documents/{doc}/retention-trigger", headers=headers, json=body)


# (method, route) -> (request, expected status per caller)
MATRIX: dict[tuple[str, str], tuple[Callable[..., httpx.Response], dict[str, int]]] = {
    ("POST", "/v1/documents"): (_upload, _expect(agency_x=201, agency_y=201)),
    ("POST", "/v1/documents:batch"): (_batch, _expect(agency_x=200, agency_y=200)),
    ("GET", "/v1/documents/{document_id}/receipt"): (
        _get("/v1/documents/{doc}/receipt"),
        _expect(agency_x=200, agency_y=404),
    ),
    ("GET", "/v1/me/documents"): (_get("/v1/me/documents"), _expect(citizen_a=200, citizen_b=200)),
    ("GET", "/v1/me/documents/{document_id}"): (
        _get("/v1/me/documents/{doc}"),
        _expect(citizen_a=200, citizen_b=404),
    ),
    ("GET", "/v1/me/documents/{document_id}/content"): (
        _get("/v1/me/documents/{doc}/content"),
        _expect(citizen_a=200, citizen_b=404),
    ),
    ("GET", "/v1/me/access-log"): (
        _get("/v1/me/access-log"),
        _expect(citizen_a=200, citizen_b=200),
    ),
    ("GET", "/v1/archive/search"): (_get("/v1/archive/search"), _expect(archivist=200)),
    ("GET", "/v1/archive/documents/{document_id}"): (
        _get("/v1/archive/documents/{doc}"),
        _expect(archivist=200),
    ),
    ("GET", "/v1/archive/audit"): (_get("/v1/archive/audit"), _expect(archivist=200)),
    ("POST", "/v1/archive/holds"): (_place_hold, _expect(archivist=201)),
    ("GET", "/v1/archive/holds"): (_get("/v1/archive/holds"), _expect(archivist=200)),
    ("GET", "/v1/archive/holds/{hold_id}"): (_on_hold("GET", ""), _expect(archivist=200)),
    ("POST", "/v1/archive/holds/{hold_id}/lift"): (
        _on_hold("POST", "/lift", {"reason": "matrix done"}),
        _expect(archivist=200),
    ),
    ("GET", "/v1/archive/documents/{document_id}/retention"): (
        _get("/v1/archive/documents/{doc}/retention"),
        _expect(archivist=200),
    ),
    # attest counts from the issue date: the owning agency gets 422, another agency 404
    ("POST", "/v1/documents/{document_id}/retention-trigger"): (
        _trigger,
        _expect(agency_x=422, agency_y=404),
    ),
    # Disposal: nothing is due in this archive, so ids are unknown to the archivist (404).
    ("POST", "/v1/archive/disposal/sweep"): (
        _post("/v1/archive/disposal/sweep"),
        _expect(archivist=200),
    ),
    ("GET", "/v1/archive/disposal/proposals"): (
        _get("/v1/archive/disposal/proposals"),
        _expect(archivist=200),
    ),
    **{
        (method, f"/v1/archive/disposal/proposals/{{proposal_id}}{suffix}"): (
            (_get if method == "GET" else _post)(f"/v1/archive/disposal/proposals/none{suffix}"),
            _expect(archivist=404),
        )
        for method, suffix in (
            ("GET", ""),
            ("GET", "/items"),
            ("POST", "/review"),
            ("POST", "/approve"),
            ("POST", "/reject"),
            ("POST", "/execute"),
        )
    },
    ("GET", "/v1/archive/certificates/{certificate_id}"): (
        _get("/v1/archive/certificates/c-none"),
        _expect(archivist=404),
    ),
    ("GET", "/v1/archive/certificates/{certificate_id}/signature"): (
        _get("/v1/archive/certificates/c-none/signature"),
        _expect(archivist=404),
    ),
    ("GET", "/healthz"): (_get("/healthz"), dict.fromkeys(CALLERS, 200)),
    ("GET", "/readyz"): (_get("/readyz"), dict.fromkeys(CALLERS, 200)),
    ("GET", "/metrics"): (_get("/metrics"), dict.fromkeys(CALLERS, 200)),
}

# Callers that may see the secret document: its owner, its sender, the archivist.
ENTITLED = {"citizen_a", "agency_x", "archivist"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, dev_pki_template) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    import shutil

    from kluis.wiring import dev_pki_dir

    data = tmp_path_factory.mktemp("matrix") / "var"
    data.mkdir()
    shutil.copytree(dev_pki_template, dev_pki_dir(data))
    settings = KluisSettings(data_dir=data, rate_limit_burst=10_000)

    def mint(role: str, sub: str, **kw: Any) -> dict[str, str]:
        token = mint_dev_token(
            data,
            role=role,  # type: ignore[arg-type]
            subject=sub,
            issuer=kw.pop("issuer", settings.auth.issuer),
            audience=kw.pop("audience", settings.auth.audience),
            **kw,
        )
        return {"Authorization": f"Bearer {token}"}

    headers = {
        "none": {},
        "expired": mint("citizen", OWNER_A, ttl_seconds=1, now=time.time() - 3600),
        "wrong_audience": mint("citizen", OWNER_A, audience="someone-else"),
        "citizen_a": mint("citizen", OWNER_A),
        "citizen_b": mint("citizen", OWNER_B),
        "agency_x": mint("agency", AGENCY_X),
        "agency_y": mint("agency", AGENCY_Y),
        "archivist": mint("archivist", "a.peeters"),
    }
    with TestClient(create_app(settings)) as client:
        created = client.post(
            "/v1/documents",
            headers=headers["agency_x"],
            files={"file": ("a.pdf", pdfs.make_pdf([SECRET_TITLE]), "application/pdf")},
            data={
                "metadata": json.dumps(
                    {"owner": OWNER_A, "type": "attest", "title": SECRET_TITLE, "ref": "SECRET"}
                )
            },
        )
        assert created.status_code == 201, created.text
        receipt = created.json()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            listing = client.get("/v1/me/documents", headers=headers["citizen_a"]).json()
            if listing["total"] == 1:
                break
            time.sleep(0.05)
        yield {"client": client, "headers": headers, "receipt": receipt}


def test_the_matrix_covers_every_route(world: dict[str, Any]) -> None:
    paths = world["client"].app.openapi()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert routes == set(MATRIX)


@pytest.mark.parametrize("endpoint", sorted(MATRIX), ids=lambda e: f"{e[0]} {e[1]}")
@pytest.mark.parametrize("caller", CALLERS)
def test_authorization(world: dict[str, Any], endpoint: tuple[str, str], caller: str) -> None:
    request, expected = MATRIX[endpoint]
    receipt = world["receipt"]
    response = request(world["client"], world["headers"][caller], receipt["aip_id"])
    assert response.status_code == expected[caller], response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    if caller not in ENTITLED:
        # No cross-owner read: nothing of the secret document in any answer.
        for secret in (SECRET_TITLE, receipt["sha256"], OWNER_A, "SECRET"):
            assert secret not in response.text, (caller, endpoint, secret)
    elif endpoint[1] == "/v1/me/documents" and caller == "citizen_a":
        assert receipt["aip_id"] in response.text
