"""`kluis reindex` and `kluis reconcile-index` on a real data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search import TantivyIndex
from tests.conftest import AGENCY_X, OWNER_A

ROOT = Path(__file__).parents[3]
KLUIS = str(Path(sys.executable).parent / "kluis")


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KLUIS_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run(
        [KLUIS, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.integration
def test_reconcile_index_heals_a_lost_entry_and_reindex_resumes(
    data_dir: Path, tmp_path: Path, pdf: bytes
) -> None:
    pdf_file = tmp_path / "a.pdf"
    pdf_file.write_bytes(pdf)
    receipt = run(
        data_dir, "ingest", str(pdf_file), "--agency", AGENCY_X, "--owner", OWNER_A,
        "--type", "attest", "--title", "Attest", "--ref", "R1",
    )  # fmt: skip
    assert receipt.returncode == 0, receipt.stderr
    aip_id = json.loads(receipt.stdout)["aip_id"]

    with TantivyIndex(data_dir / "index") as index:  # lose the entry
        index.remove([aip_id])
        index.refresh()
    found = run(data_dir, "reconcile-index", "--check", "--json")
    assert found.returncode == 1
    assert json.loads(found.stdout)["missing"] == [aip_id]

    healed = run(data_dir, "reconcile-index", "--json")
    assert healed.returncode == 0, healed.stderr
    assert json.loads(healed.stdout)["verified"] is True
    assert json.loads(run(data_dir, "reconcile-index", "--json").stdout)["missing"] == []

    (data_dir / "reindex.checkpoint").write_text(json.dumps({"after": aip_id}))
    resumed = run(data_dir, "reindex")
    assert resumed.returncode == 0, resumed.stderr
    assert f"indexed 0 packages (resumed after {aip_id})" in resumed.stdout
    assert not (data_dir / "reindex.checkpoint").exists()
    assert "indexed 1 packages" in run(data_dir, "reindex").stdout
    rebuilt = run(data_dir, "reindex", "--fresh", "--processes", "2")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "indexed 1 packages" in rebuilt.stdout
