"""`kluis renew`: refused without a TSA (the dev PKI has none); with the certomancer PKI as
the configured signer and TSA it stores and prints the document's next version."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.cli.test_cli import KLUIS, ROOT
from tests.conftest import AGENCY_X, OWNER_A
from tests.support.pdfs import make_pdf
from tests.support.pki import running_pki


def _run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, KLUIS_DATA_DIR=str(data_dir), COLUMNS="200", **env)
    return subprocess.run(
        [KLUIS, *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=120
    )


def test_renew_on_the_dev_signer_without_a_tsa_is_refused(data_dir: Path) -> None:
    result = _run(data_dir, "renew", "5b0c2c1e-5d4e-4f7a-9d7e-2f7b8a1c0d3e")
    assert result.returncode == 2
    assert "time-stamp authority" in result.stderr and "development PKI" in result.stderr


def test_renew_stores_and_prints_the_next_version(data_dir: Path, tmp_path: Path) -> None:
    pki = running_pki()
    env = {
        "KLUIS_SIGNER": "pkcs12",
        "KLUIS_PKCS12__PATH": str(pki.p12_path("signer-rsa2048")),
        "KLUIS_SIGNING_LEVEL": "B-T",
        "KLUIS_TSA_URL": pki.tsa_url,
        "KLUIS_TRUST_ROOTS": json.dumps([str(pki.cert_path("root"))]),
    }
    pdf_file = tmp_path / "attest.pdf"
    pdf_file.write_bytes(make_pdf(["Attest", "te vernieuwen"]))
    ingested = _run(
        data_dir,
        "ingest",
        str(pdf_file),
        *("--agency", AGENCY_X, "--owner", OWNER_A, "--type", "attest", "--ref", "R-renew"),
        **env,
    )
    assert ingested.returncode == 0, ingested.stderr
    doc = json.loads(ingested.stdout)["aip_id"]

    renewed = _run(data_dir, "renew", doc, **env)
    assert renewed.returncode == 0, renewed.stderr
    new_id = renewed.stdout.strip()
    assert new_id and new_id != doc

    shown = _run(data_dir, "get", doc, **env)
    assert shown.returncode == 0, shown.stderr
    body = json.loads(shown.stdout)
    assert body["aip_id"] == new_id and body["signature_level"] == "B-LTA"

    missing = _run(data_dir, "renew", "5b0c2c1e-5d4e-4f7a-9d7e-2f7b8a1c0d3e", **env)
    assert missing.returncode == 3
