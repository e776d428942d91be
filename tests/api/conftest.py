from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kluis.api.app import create_app
from kluis.auth import Role, mint_dev_token
from kluis.settings import KluisSettings


@pytest.fixture
def client(settings: KluisSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def token(settings: KluisSettings):  # type: ignore[no-untyped-def]
    def mint(role: Role, sub: str, **kw: object) -> dict[str, str]:
        jwt = mint_dev_token(
            settings.data_dir,
            role=role,
            subject=sub,
            issuer=settings.auth.issuer,
            audience=settings.auth.audience,
            **kw,  # type: ignore[arg-type]
        )
        return {"Authorization": f"Bearer {jwt}"}

    return mint


def upload(
    client: TestClient,
    headers: dict[str, str],
    pdf: bytes,
    *,
    owner: str,
    ref: str,
    type: str = "attest",
    title: str = "Attest",
) -> object:
    return client.post(
        "/v1/documents",
        headers=headers,
        files={"file": ("attest.pdf", pdf, "application/pdf")},
        data={"metadata": json.dumps({"owner": owner, "type": type, "title": title, "ref": ref})},
    )


@pytest.fixture
def services_of():  # type: ignore[no-untyped-def]
    def get(client: TestClient):  # type: ignore[no-untyped-def]
        return client.app.state.services  # type: ignore[attr-defined]

    return get
