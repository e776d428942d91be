"""Schemathesis against our own OpenAPI document: no 5xx, no response off its schema.

Bounded: a fixed number of examples per operation, derandomized, so the run is short and
repeatable. Every operation is called with a valid token of the role it is meant for (and
the generated cases also try without), so the fuzzing reaches past authentication.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.python import asgi as schemathesis_asgi

from kluis.api.app import create_app
from kluis.auth import mint_dev_token
from kluis.settings import KluisSettings
from kluis.wiring import dev_pki_dir
from tests.conftest import AGENCY_X, OWNER_A


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory, dev_pki_template: Path):  # type: ignore[no-untyped-def]
    data = tmp_path_factory.mktemp("fuzz") / "var"
    data.mkdir()
    shutil.copytree(dev_pki_template, dev_pki_dir(data))
    settings = KluisSettings(data_dir=data, rate_limit_burst=100_000)
    app = create_app(settings)
    tokens = {
        role: mint_dev_token(
            data,
            role=role,
            subject=sub,
            issuer=settings.auth.issuer,
            audience=settings.auth.audience,
        )
        for role, sub in (("agency", AGENCY_X), ("citizen", OWNER_A), ("archivist", "a.p"))
    }
    yield app, tokens
    schemathesis_asgi.shutdown_lifespans()


def _role(path: str) -> str:
    if path.startswith("/v1/me"):
        return "citizen"
    if path.startswith("/v1/archive"):
        return "archivist"
    return "agency"


def test_openapi_fuzz(fuzz_app) -> None:  # type: ignore[no-untyped-def]
    app, tokens = fuzz_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        response_schema_conformance,
        content_type_conformance,
        status_code_conformance,
    ]
    failures: list[str] = []
    calls = [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        _fuzz(operation, tokens[_role(operation.path)], checks, failures, calls)
    assert calls[0] > 150, calls
    assert not failures, "\n\n".join(failures[:5])


def _fuzz(operation, token: str, checks, failures: list[str], calls: list[int]) -> None:  # type: ignore[no-untyped-def]
    where = f"{operation.method.upper()} {operation.path}"

    @hypothesis.settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy())
    def run(case) -> None:  # type: ignore[no-untyped-def]
        calls[0] += 1
        headers = {"Authorization": f"Bearer {token}"} if calls[0] % 4 else {}
        try:
            case.call_and_validate(headers=headers, checks=checks)
        except Exception as exc:  # collected: one report for all operations
            failures.append(f"{where}: {exc}"[:3000])

    run()
