"""KLUIS_INDEX and the opensearch section select and configure the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kluis import wiring
from kluis.settings import KluisSettings
from search.opensearch import OpenSearchIndex
from search.tantivy_index import TantivyIndex
from tests.unit.search.test_opensearch_bodies import FakeClient


def test_tantivy_is_the_default(tmp_path: Path) -> None:
    index = wiring.build_index(KluisSettings(data_dir=tmp_path))
    try:
        assert isinstance(index, TantivyIndex)
    finally:
        index.close()


def test_opensearch_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KLUIS_INDEX", "opensearch")
    monkeypatch.setenv("KLUIS_OPENSEARCH__URL", "https://search.example:9200")
    monkeypatch.setenv("KLUIS_OPENSEARCH__USERNAME", "kluis")
    monkeypatch.setenv("KLUIS_OPENSEARCH__PASSWORD", "geheim")
    monkeypatch.setenv("KLUIS_OPENSEARCH__ALIAS", "docs")
    settings = KluisSettings(data_dir=tmp_path)
    assert "geheim" not in str(settings.redacted())
    seen: dict[str, Any] = {}

    def connect(url: str, **kwargs: Any) -> FakeClient:
        seen.update(kwargs, url=url)
        return FakeClient()

    monkeypatch.setattr(wiring, "connect", connect)
    index = wiring.build_index(settings)
    assert isinstance(index, OpenSearchIndex) and index.alias == "docs"
    assert seen == {
        "url": "https://search.example:9200",
        "username": "kluis",
        "password": "geheim",
        "verify_certs": True,
    }
    index.close()
