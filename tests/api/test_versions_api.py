"""Readers get a document's newest AIP version under the document's own id; ownership is
still decided against the stored package."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from archive.model import PackageInput, PremisEvent
from archive.package import build_aip
from archive.store import AipStore
from tests.api.conftest import upload
from tests.conftest import AGENCY_X, OWNER_A, OWNER_B


def _commit_second_version(store: AipStore, doc: str) -> tuple[str, bytes]:
    """A new version whose PDF appends to the stored one (as signature renewal does)."""
    first = store.manifest(doc)
    with store.open_pdf(doc) as f:
        pdf = f.read() + b"\n% version 2\n"
    now = datetime.now(UTC) + timedelta(days=1)
    package = build_aip(
        PackageInput(
            aip_id=str(uuid.uuid4()),
            metadata=first.metadata,
            signed_pdf=pdf,
            original_sha256=first.original_sha256,
            pdf_name=first.pdf_path.rsplit("/", 1)[-1],
            text=store.read_text(doc),
            signature=first.signature,
            created_at=now,
            events=(
                *first.events,
                PremisEvent(str(uuid.uuid4()), "digital signature generation", now, "success", ""),
            ),
            agents=(),
            previous_aip_id=doc,
        )
    )
    manifest, number = store.commit_version(package)
    assert number == 2
    return manifest.aip_id, pdf


def test_readers_get_the_newest_version_under_the_document_id(
    client: TestClient,
    token,  # type: ignore[no-untyped-def]
    services_of,  # type: ignore[no-untyped-def]
    pdf: bytes,
) -> None:
    receipt = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="V1").json()  # type: ignore[attr-defined]
    doc = receipt["aip_id"]
    citizen = token("citizen", OWNER_A)
    first = client.get(f"/v1/me/documents/{doc}/content", headers=citizen)
    assert first.status_code == 200
    archived_at = client.get(f"/v1/me/documents/{doc}", headers=citizen).json()["archived_at"]

    v2, new_pdf = _commit_second_version(services_of(client).store, doc)

    content = client.get(f"/v1/me/documents/{doc}/content", headers=citizen)
    assert content.status_code == 200
    assert content.content == new_pdf and new_pdf.startswith(first.content)
    assert content.headers["etag"] == f'"{hashlib.sha256(new_pdf).hexdigest()}"'
    detail = client.get(f"/v1/me/documents/{doc}", headers=citizen).json()
    assert detail["id"] == doc and detail["sha256"] == hashlib.sha256(new_pdf).hexdigest()
    assert detail["archived_at"] == archived_at  # a new version does not make it newer

    archived = client.get(f"/v1/archive/documents/{doc}", headers=token("archivist", "A1"))
    assert archived.status_code == 200
    body = archived.json()
    assert body["id"] == doc
    assert body["events"][-1]["type"] == "digital signature generation"
    assert {r["document_id"] for r in body["reads"]} == {doc}  # reads stay under the doc id

    # a version's own package id is not a document id
    assert client.get(f"/v1/me/documents/{v2}/content", headers=citizen).status_code == 404
    other = token("citizen", OWNER_B)
    assert client.get(f"/v1/me/documents/{doc}/content", headers=other).status_code == 404
    assert client.get(f"/v1/me/documents/{doc}", headers=other).status_code == 404
