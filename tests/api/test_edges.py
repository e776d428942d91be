"""Hard edges: size limits, rate limits, backends down, headers, request ids, metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from archive.errors import StorageUnavailableError
from kluis.api.app import create_app
from kluis.observability import JsonFormatter
from kluis.settings import KluisSettings
from search.errors import IndexUnavailableError
from tests.api.conftest import upload
from tests.conftest import AGENCY_X, OWNER_A

PROBLEM = "application/problem+json"


@pytest.fixture
def tight(settings: KluisSettings) -> Iterator[TestClient]:
    small = settings.model_copy(
        update={"max_request_bytes": 200_000, "rate_limit_per_second": 1.0, "rate_limit_burst": 3}
    )
    with TestClient(create_app(small)) as c:
        yield c


def test_request_size_limit_is_413(tight: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    big = pdf + b"%" + b"x" * 300_000
    response = upload(tight, token("agency", AGENCY_X), big, owner=OWNER_A, ref="S")
    assert response.status_code == 413  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'--b\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        for _ in range(30):
            yield b"x" * 10_000

    streamed = tight.post(
        "/v1/documents",
        headers={**token("agency", AGENCY_X), "Content-Type": "multipart/form-data; boundary=b"},
        content=chunked(),
    )
    assert streamed.status_code == 413
    assert list(tight.app.state.services.storage.keys("aips/")) == []  # type: ignore[attr-defined]


def test_rate_limit_is_429_with_retry_after(tight: TestClient, token) -> None:  # type: ignore[no-untyped-def]
    citizen = token("citizen", OWNER_A)
    statuses = [tight.get("/v1/me/documents", headers=citizen).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[-1] == 429
    limited = tight.get("/v1/me/documents", headers=citizen)
    assert limited.headers["content-type"] == PROBLEM
    assert int(limited.headers["retry-after"]) >= 1
    # Another client is not affected.
    assert tight.get("/v1/me/documents", headers=token("agency", AGENCY_X)).status_code == 403
    # Nor are anonymous failures free: they count per address.
    anonymous = [tight.get("/v1/me/documents").status_code for _ in range(5)]
    assert anonymous[0] == 401 and anonymous[-1] == 429


def test_storage_down_is_503_and_nothing_is_acknowledged(
    client: TestClient,
    token,
    pdf: bytes,
    services_of,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    services = services_of(client)

    def down(*args: object, **kwargs: object) -> object:
        raise StorageUnavailableError("fs", "disk on fire")

    monkeypatch.setattr(services.storage, "put", down)
    response = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="D")
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert response.headers["retry-after"]  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    monkeypatch.undo()
    assert list(services.storage.keys("aips/")) == []
    # The retry succeeds once storage is back: nothing half-done blocks it.
    retry = upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="D")
    assert retry.status_code == 201  # type: ignore[attr-defined]


def test_index_down_is_503_and_readyz_says_so(
    client: TestClient,
    token,
    services_of,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    services = services_of(client)

    def down(*args: object, **kwargs: object) -> object:
        raise IndexUnavailableError("tantivy", "index closed")

    monkeypatch.setattr(services.index, "search", down)
    listing = client.get("/v1/me/documents", headers=token("citizen", OWNER_A))
    assert listing.status_code == 503
    assert listing.headers["retry-after"]
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["index"].startswith("down")


def test_security_headers_and_request_id(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    for header in (
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "strict-transport-security",
        "referrer-policy",
    ):
        assert header in response.headers
    assert response.headers["cache-control"] == "no-store"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id\n<script>"})
    assert generated.headers["x-request-id"] != "bad id\n<script>"
    assert len(generated.headers["x-request-id"]) == 32


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    for response in (client.get("/nope"), client.delete("/v1/me/documents")):
        assert response.headers["content-type"] == PROBLEM
        assert response.status_code in (404, 405)


def test_metrics(client: TestClient, token, pdf: bytes) -> None:  # type: ignore[no-untyped-def]
    upload(client, token("agency", AGENCY_X), pdf, owner=OWNER_A, ref="M")
    client.get("/v1/me/documents")
    text = client.get("/metrics").text
    assert 'kluis_ingests_total{outcome="created"} 1.0' in text
    assert 'route="/v1/documents"' in text
    assert "kluis_http_request_duration_seconds_bucket" in text
    assert 'kluis_http_errors_total{route="/v1/me/documents",status="401"} 1.0' in text


def test_access_log_lines_are_json_with_request_id(client: TestClient, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, logger="kluis.access")
    client.get("/v1/me/documents", params={"q": OWNER_A}, headers={"X-Request-ID": "r-1"})
    record = next(r for r in caplog.records if r.name == "kluis.access")
    line = json.loads(JsonFormatter().format(record))
    assert line["route"] == "/v1/me/documents"
    assert line["status"] == 401
    assert OWNER_A not in json.dumps(line)  # the query string is never logged
