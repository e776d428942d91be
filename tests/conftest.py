"""Shared fixtures: a fresh data directory per test, real backends, real PDFs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kluis.settings import KluisSettings
from kluis.wiring import Services, build_services, dev_pki_dir
from signing.devpki import ensure_dev_pki
from tests.support.pdfs import make_pdf

OWNER_A = "85073003328"
OWNER_B = "00010100105"
AGENCY_X = "OVO000001"
AGENCY_Y = "OVO000002"


@pytest.fixture(scope="session")
def dev_pki_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One development PKI per session: RSA key generation is slow, copying is not."""
    root = tmp_path_factory.mktemp("pki-template")
    ensure_dev_pki(root / "dev-pki")
    return root / "dev-pki"


@pytest.fixture
def data_dir(tmp_path: Path, dev_pki_template: Path) -> Path:
    data = tmp_path / "var"
    data.mkdir()
    shutil.copytree(dev_pki_template, dev_pki_dir(data))
    return data


@pytest.fixture
def settings(data_dir: Path) -> KluisSettings:
    return KluisSettings(data_dir=data_dir)


@pytest.fixture
def services(settings: KluisSettings) -> Iterator[Services]:
    built = build_services(settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def pdf() -> bytes:
    return make_pdf(["Besluit over uw vergunningen", "Het college heeft beslist."])
