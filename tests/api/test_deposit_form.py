"""``POST /v1/documents`` reads its own form: the answers FastAPI's form handling gave stay."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from kluis.api.app import create_app
from kluis.api.document_form import DOCUMENT_FORM_OPENAPI, MAX_METADATA_CHARS
from kluis.settings import KluisSettings
from tests.api.conftest import upload
from tests.conftest import AGENCY_X, OWNER_A

PROBLEM = "application/problem+json"
META = json.dumps({"owner": OWNER_A, "type": "attest", "title": "A", "ref": "F1"})


def _post(client: TestClient, headers: dict[str, str], **kw: object) -> dict[str, object]:
    response = client.post("/v1/documents", headers=headers, **kw)  # type: ignore[arg-type]
    assert response.headers["content-type"] == PROBLEM, response.text
    assert not list(client.app.state.services.storage.keys("aips/"))  # type: ignore[attr-defined]
    body: dict[str, object] = {"status": response.status_code, **response.json()}
    return body


def _fields(problem: dict[str, object]) -> list[object]:
    return [e["field"] for e in problem["errors"]]  # type: ignore[attr-defined, index]


def test_missing_or_mistyped_parts_are_422_naming_the_field(
    client: TestClient,
    token,
    pdf: bytes,  # type: ignore[no-untyped-def]
) -> None:
    agency = token("agency", AGENCY_X)
    pdf_file = {"file": ("a.pdf", pdf, "application/pdf")}
    nothing = _post(client, agency, files={"other": ("x.pdf", b"x", "application/pdf")})
    assert nothing["status"] == 422 and _fields(nothing) == ["file", "metadata"]
    no_meta = _post(client, agency, files=pdf_file)
    assert no_meta["status"] == 422 and _fields(no_meta) == ["metadata"]
    empty_meta = _post(client, agency, files=pdf_file, data={"metadata": ""})
    assert empty_meta["status"] == 422 and _fields(empty_meta) == ["metadata"]
    file_as_field = _post(client, agency, files={"x": ("x", b"", None)}, data={"file": "abc"})
    assert file_as_field["status"] == 422 and _fields(file_as_field) == ["file", "metadata"]
    meta_as_file = _post(
        client, agency, files={**pdf_file, "metadata": ("m.json", META.encode(), "text/plain")}
    )
    assert meta_as_file["status"] == 422 and _fields(meta_as_file) == ["metadata"]
    long_meta = _post(
        client, agency, files=pdf_file, data={"metadata": "é" * (MAX_METADATA_CHARS + 1)}
    )
    assert long_meta["status"] == 422 and _fields(long_meta) == ["metadata"]


def test_malformed_multipart_is_400_and_no_token_is_401_before_the_body_is_read(
    client: TestClient,
    token,  # type: ignore[no-untyped-def]
) -> None:
    broken = {"Content-Type": "multipart/form-data; boundary=b"}
    bad = _post(client, {**token("agency", AGENCY_X), **broken}, content=b"not multipart")
    assert bad["status"] == 400 and bad["detail"] == "Invalid multipart data."
    assert _post(client, broken, content=b"not multipart")["status"] == 401


def test_a_pdf_over_the_limit_is_rejected(settings: KluisSettings, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    for limit, expected in ((len(pdf) - 1, 422), (len(pdf), 201)):
        with TestClient(create_app(settings.model_copy(update={"max_pdf_bytes": limit}))) as c:
            response = upload(c, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref=f"L{limit}")
            assert response.status_code == expected, response.text  # type: ignore[attr-defined]


def test_the_openapi_document_describes_the_form(client: TestClient) -> None:
    operation = client.app.openapi()["paths"]["/v1/documents"]["post"]  # type: ignore[attr-defined]
    assert operation["requestBody"] == DOCUMENT_FORM_OPENAPI["requestBody"]
    schema = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file", "metadata"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"Idempotency-Key", "Content-Digest"}
