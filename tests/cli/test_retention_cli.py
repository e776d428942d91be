"""``kluis retention holds|recompute|trigger|state`` as an archivist runs them: real
processes on a real data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from ingest.submission import Submission
from kluis.auth import mint_dev_token
from kluis.settings import KluisSettings
from kluis.wiring import build_services
from tests.conftest import AGENCY_X, OWNER_A

ROOT = Path(__file__).parents[2]
KLUIS = str(Path(sys.executable).parent / "kluis")
LIST_1 = """
version = "cli-1"
[types.attest]
retention = "P10Y"
action = "destroy"
[types.dossier]
retention = "P5Y"
trigger = "event:closure"
action = "destroy"
"""


@pytest.fixture
def selection_file(tmp_path: Path) -> Path:
    path = tmp_path / "list-1.toml"
    path.write_text(LIST_1, encoding="utf-8")
    return path


def run(data_dir: Path, selection: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        KLUIS_DATA_DIR=str(data_dir),
        KLUIS_SELECTION_LIST=str(selection),
        COLUMNS="200",
    )
    return subprocess.run(
        [KLUIS, "retention", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _token(data_dir: Path, archivist: str) -> str:
    auth = KluisSettings(data_dir=data_dir).auth
    return mint_dev_token(
        data_dir, role="archivist", subject=archivist, issuer=auth.issuer, audience=auth.audience
    )


def _ingest(data_dir: Path, selection: Path, pdf: bytes) -> tuple[str, str]:
    services = build_services(KluisSettings(data_dir=data_dir, selection_list=selection))
    try:
        ids = []
        for n, kind in enumerate(["attest", "dossier"]):
            sub = Submission(AGENCY_X, OWNER_A, kind, f"Doc {n}", f"R{n}", date(2024, 1, 2))
            ids.append(services.ingestor.ingest(sub, pdf).receipt.aip_id)
        services.index.refresh()
    finally:
        services.close()
    return ids[0], ids[1]


def test_holds_recompute_and_trigger(
    data_dir: Path, selection_file: Path, pdf: bytes, tmp_path: Path
) -> None:
    attest, dossier = _ingest(data_dir, selection_file, pdf)

    arch_1, arch_2 = _token(data_dir, "arch-1"), _token(data_dir, "arch-2")
    bad = run(data_dir, selection_file, "holds", "place", attest, "--token", arch_1)
    assert bad.returncode == 2 and "reason" in bad.stderr and "mandate" in bad.stderr

    placed = run(
        data_dir, selection_file, "holds", "place", "--type", "attest",
        "--reason", "Inspectie", "--mandate", "Besluit 2026/4", "--token", arch_1,
    )  # fmt: skip
    assert placed.returncode == 0, placed.stderr
    hold = json.loads(placed.stdout)
    assert hold["document_ids"] == [attest] and hold["query"] == {"document_type": "attest"}

    state = json.loads(run(data_dir, selection_file, "state", attest).stdout)
    assert state["holds"] == [hold["id"]] and state["list_version"] == "cli-1"
    listed = run(data_dir, selection_file, "holds", "list", "--active", "--json")
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [hold["id"]]
    table = run(data_dir, selection_file, "holds", "list")
    assert "Besluit 2026/4" in table.stdout

    anonymous = run(data_dir, selection_file, "holds", "lift", hold["id"], "--reason", "x")
    assert anonymous.returncode == 77, anonymous.stderr  # lifting allows destruction: whose?
    lifted = run(
        data_dir,
        selection_file,
        "holds",
        "lift",
        hold["id"],
        "--reason",
        "klaar",
        "--token",
        arch_2,
    )
    assert lifted.returncode == 0, lifted.stderr
    assert json.loads(lifted.stdout)["lifted_by"] == "arch-2"
    assert json.loads(lifted.stdout)["active"] is False
    assert json.loads(run(data_dir, selection_file, "state", attest).stdout)["holds"] == []
    missing = run(data_dir, selection_file, "holds", "show", "no-such-hold")
    assert missing.returncode == 3

    trig = run(data_dir, selection_file, "trigger", dossier, "closure", "2025-02-01")
    assert trig.returncode == 0, trig.stderr
    assert json.loads(trig.stdout)["retention_until"] == "2030-02-01"
    wrong = run(data_dir, selection_file, "trigger", dossier, "closure", "2025-03-01")
    assert wrong.returncode == 4

    list_2 = tmp_path / "list-2.toml"
    list_2.write_text(
        LIST_1.replace('"cli-1"', '"cli-2"').replace('"P10Y"', '"P20Y"'), encoding="utf-8"
    )
    report = run(data_dir, selection_file, "recompute", str(list_2), "--json", "--token", arch_1)
    no_token = run(data_dir, selection_file, "recompute", str(list_2))
    assert no_token.returncode == 77, no_token.stderr
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert [c["id"] for c in body["extended"]] == [attest]
    assert body["counts"]["unchanged"] == 1
    again = run(data_dir, selection_file, "recompute", str(list_2), "--token", arch_2)
    assert "extended 1" in again.stdout
    reused = tmp_path / "list-3.toml"
    reused.write_text(LIST_1.replace('"P10Y"', '"P1Y"'), encoding="utf-8")
    conflict = run(data_dir, selection_file, "recompute", str(reused), "--token", arch_1)
    assert conflict.returncode == 4 and "cli-1" in conflict.stderr
