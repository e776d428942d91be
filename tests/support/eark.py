"""Builders of archive test data: a realistic PackageInput and an E-ARK validator runner.

``make_input`` gives a complete :class:`PackageInput` with a real PDF (``make_pdf``) and a
fake but well-formed signature record (signing is tested in ``tests/unit/signing``).
``run_eark_validator`` runs the E-ARK Foundation's eark-validator from its own virtualenv
(``.venv-eark``; it pins an lxml our stack cannot use) and returns its JSON report.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from archive.model import (
    Agent,
    BuiltPackage,
    DocumentMetadata,
    PackageInput,
    PremisEvent,
    SignatureInfo,
)
from tests.support.pdfs import make_pdf

REPO_ROOT = Path(__file__).resolve().parents[2]
EARK_PYTHON = REPO_ROOT / ".venv-eark" / "bin" / "python"
EARK_RUNNER = Path(__file__).with_name("run_eark_validator.py")
AIP_ID = "6f1c2a4e-9b1d-4c3e-8a57-0d2f3b4c5d6e"
T0 = datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)


def make_input(aip_id: str = AIP_ID, **changes: Any) -> PackageInput:
    """A complete, valid PackageInput; keyword arguments replace fields."""
    pdf = make_pdf(["Besluit over uw vergunning", "Het college heeft beslist: goedgekeurd."])
    agents = (
        Agent("kluis", "Kluis archive", "software"),
        Agent("OVO000001", "Agentschap Innoveren & Ondernemen", "organization"),
    )
    events = (
        PremisEvent(
            "ev-1",
            "ingestion",
            T0,
            "success",
            "received via POST /v1/documents",
            ("OVO000001", "kluis"),
        ),
        PremisEvent("ev-2", "message digest calculation", T0, "success", "sha256", ("kluis",)),
        PremisEvent("ev-3", "digital signature generation", T0, "success", "PAdES B-T", ("kluis",)),
        PremisEvent("ev-4", "validation", T0, "success", "", ()),
    )
    base = PackageInput(
        aip_id=aip_id,
        metadata=DocumentMetadata(
            owner_id="85073003328",
            owner_kind="person",
            agency_id="OVO000001",
            document_type="besluit",
            title='Besluit <vergunning> & "bouw" — é ë',
            issued_on=date(2025, 3, 1),
            agency_ref="REF-2025/0001",
            retention_until=date(2055, 3, 1),
        ),
        signed_pdf=pdf,
        original_sha256="ab" * 32,
        pdf_name="document.pdf",
        text="Besluit over uw vergunning\nHet college heeft beslist: goedgekeurd. é ë",
        signature=SignatureInfo(
            level="B-T",
            signed_at=T0,
            signer_subject="CN=Kluis Dev Signer,O=Vlaamse overheid,C=BE",
            certificate_sha256="cd" * 32,
        ),
        created_at=T0,
        events=events,
        agents=agents,
    )
    return dataclasses.replace(base, **changes)


def write_package(pkg: BuiltPackage, target: Path) -> Path:
    """Write the package as a directory tree (the layout a validator expects); return it."""
    target.mkdir(parents=True)
    for path, data in {**pkg.files, "METS.xml": pkg.root_mets}.items():
        (target / path).parent.mkdir(parents=True, exist_ok=True)
        (target / path).write_bytes(data)
    return target


def run_eark_validator(*packages: Path) -> dict[str, Any]:
    """Run eark-validator 1.1.3 on package directories; return ``{name: report}``.

    Raises:
        FileNotFoundError: ``.venv-eark`` is missing (create it with ``make install-test``).
        subprocess.CalledProcessError: the runner failed.
    """
    if not EARK_PYTHON.exists():
        raise FileNotFoundError(
            f"{EARK_PYTHON} is missing: run `python3 -m venv .venv-eark && "
            ".venv-eark/bin/pip install eark-validator==1.1.3` (or `make install-test`)"
        )
    done = subprocess.run(
        [str(EARK_PYTHON), "-I", str(EARK_RUNNER), *map(str, packages)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result
