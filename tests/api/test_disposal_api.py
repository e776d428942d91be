"""Disposal over HTTP: sweep, four eyes from verified tokens (also racing), execution,
the certificate and its signature (checked with openssl), and "410 Gone" for an agency that
retries the reference of a destroyed document."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from ingest.reconcile import reconcile_ingest
from kluis.settings import KluisSettings
from tests.conftest import AGENCY_X, OWNER_A


def _deposit(client: TestClient, agency: dict[str, str], pdf: bytes, ref: str,
             issued_on: str, type: str = "attest") -> Any:  # fmt: skip
    meta = {"owner": OWNER_A, "type": type, "title": "Attest van 2010", "ref": ref,
            "issued_on": issued_on}  # fmt: skip
    return client.post(
        "/v1/documents",
        headers=agency,
        files={"file": ("a.pdf", pdf, "application/pdf")},
        data={"metadata": json.dumps(meta)},
    )


def test_disposal_through_the_api(
    client: TestClient, token: Any, pdf: bytes, settings: KluisSettings, tmp_path: Path
) -> None:
    agency = token("agency", AGENCY_X)
    anna, bart = token("archivist", "anna"), token("archivist", "bart")
    old = _deposit(client, agency, pdf, "OLD-1", "2010-01-04")
    assert old.status_code == 201, old.text
    young = _deposit(client, agency, pdf, "NEW-1", "2025-06-01")
    assert young.status_code == 201, young.text
    old_id, young_id = old.json()["aip_id"], young.json()["aip_id"]
    client.app.state.services.index.refresh()  # type: ignore[attr-defined]

    swept = client.post("/v1/archive/disposal/sweep", headers=anna)
    assert swept.status_code == 200, swept.text
    proposal = swept.json()["proposal"]
    assert proposal["items"] == 1 and proposal["proposed_by"] == "anna"
    pid = proposal["id"]
    items = client.get(f"/v1/archive/disposal/proposals/{pid}/items", headers=anna).json()
    assert [i["document_id"] for i in items["items"]] == [old_id]
    assert young_id not in json.dumps(items)

    assert client.post(f"/v1/archive/disposal/proposals/{pid}/execute",
                       headers=anna).status_code == 409  # fmt: skip
    assert client.post(f"/v1/archive/disposal/proposals/{pid}/review", headers=anna,
                       json={"note": "gezien"}).status_code == 200  # fmt: skip
    # anna cannot approve her own review, however many requests she sends at once.
    statuses: list[int] = []

    def approve_as_anna() -> None:
        r = client.post(f"/v1/archive/disposal/proposals/{pid}/approve", headers=anna)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=approve_as_anna) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [403] * 6
    denied = client.post(f"/v1/archive/disposal/proposals/{pid}/approve", headers=anna)
    assert denied.headers["content-type"] == "application/problem+json"
    assert denied.json()["type"].endswith("/four-eyes")

    approved = client.post(f"/v1/archive/disposal/proposals/{pid}/approve", headers=bart)
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    executed = client.post(f"/v1/archive/disposal/proposals/{pid}/execute", headers=bart)
    assert executed.status_code == 200, executed.text
    result = executed.json()
    assert (result["destroyed"], result["skipped"]) == (1, 0)
    cid = result["certificate_id"]

    cert = client.get(f"/v1/archive/certificates/{cid}", headers=anna)
    sig = client.get(f"/v1/archive/certificates/{cid}/signature", headers=anna)
    assert cert.status_code == 200 and sig.status_code == 200
    assert sig.headers["content-type"] == "application/pkcs7-signature"
    body = cert.json()
    assert [r["document_id"] for r in body["disposed"]] == [old_id]
    assert body["review"]["archivist"] == "anna" and body["approval"]["archivist"] == "bart"
    assert OWNER_A not in cert.text and "Attest van 2010" not in cert.text
    _openssl_verify(cert.content, sig.content, settings, tmp_path)

    # The destroyed document is gone for everyone; the young one is untouched.
    citizen = token("citizen", OWNER_A)
    assert client.get(f"/v1/me/documents/{old_id}", headers=citizen).status_code == 404
    assert client.get(f"/v1/me/documents/{young_id}", headers=citizen).status_code == 200
    # The agency retries the old reference with the same bytes: gone, not archived again.
    retry = _deposit(client, agency, pdf, "OLD-1", "2010-01-04")
    assert retry.status_code == 410, retry.text
    assert retry.json()["type"].endswith("/disposed")
    # Reconcile a day later never takes the destroyed document's claim for an abandoned
    # ingest (releasing it would let the retry archive the document again).
    services = client.app.state.services  # type: ignore[attr-defined]
    later = datetime.now(UTC) + timedelta(days=1)
    report = reconcile_ingest(services.store, services.ledger, clock=lambda: later)
    assert old_id not in report.released_claims + report.discarded_packages
    assert _deposit(client, agency, pdf, "OLD-1", "2010-01-04").status_code == 410
    # Nothing else to propose: the young document is not due, the old one is gone.
    assert client.post("/v1/archive/disposal/sweep", headers=anna).json()["proposal"] is None
    listed = client.get("/v1/archive/disposal/proposals", headers=anna).json()
    assert [(p["id"], p["state"], p["certificate_id"]) for p in listed] == [(pid, "executed", cid)]


def _openssl_verify(data: bytes, sig: bytes, settings: KluisSettings, tmp: Path) -> None:
    from kluis.wiring import build_key_source

    roots = build_key_source(settings)[1]
    pem = b"".join(
        x509.load_der_x509_certificate(r).public_bytes(serialization.Encoding.PEM) for r in roots
    )
    for name, value in (("c.json", data), ("c.p7s", sig), ("roots.pem", pem)):
        (tmp / name).write_bytes(value)
    assert shutil.which("openssl")
    done = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(tmp / "c.p7s"),
         "-content", str(tmp / "c.json"), "-CAfile", str(tmp / "roots.pem"), "-purpose", "any",
         "-out", "/dev/null"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_rejected_proposals_free_their_documents(
    client: TestClient, token: Any, pdf: bytes
) -> None:
    agency = token("agency", AGENCY_X)
    anna, bart = token("archivist", "anna"), token("archivist", "bart")
    doc = _deposit(client, agency, pdf, "OLD-2", "2009-02-02").json()["aip_id"]
    client.app.state.services.index.refresh()  # type: ignore[attr-defined]
    pid = client.post("/v1/archive/disposal/sweep", headers=anna).json()["proposal"]["id"]
    assert client.post("/v1/archive/disposal/sweep", headers=anna).json()["proposal"] is None
    rejected = client.post(f"/v1/archive/disposal/proposals/{pid}/reject", headers=bart)
    assert rejected.json()["state"] == "rejected"
    assert client.post(f"/v1/archive/disposal/proposals/{pid}/approve",
                       headers=bart).status_code == 409  # fmt: skip
    again = client.post("/v1/archive/disposal/sweep", headers=anna).json()["proposal"]
    assert again is not None and again["id"] != pid and again["items"] == 1
    items = client.get(f"/v1/archive/disposal/proposals/{again['id']}/items", headers=anna)
    assert items.json()["items"][0]["document_id"] == doc
    # Nobody executes the rejected one.
    assert client.post(f"/v1/archive/disposal/proposals/{pid}/execute",
                       headers=bart).status_code == 409  # fmt: skip
