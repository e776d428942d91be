"""``kluis retention sweep|proposals|review|approve|reject|execute|certificate`` as a person
runs them: real processes on a real data directory, identities from verified tokens."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import ingest, run
from tests.conftest import OWNER_A


def _token(data_dir: Path, role: str, sub: str) -> str:
    done = run(data_dir, "token", "--role", role, "--sub", sub)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_disposal_from_the_command_line(data_dir: Path, tmp_path: Path, pdf: bytes) -> None:
    pdf_file = tmp_path / "a.pdf"
    pdf_file.write_bytes(pdf)
    old = ingest(data_dir, pdf_file, "--ref", "OLD", "--issued-on", "2011-05-05")
    assert old.returncode == 0, old.stderr
    young = ingest(data_dir, pdf_file, "--ref", "YOUNG")
    assert young.returncode == 0, young.stderr
    old_id, young_id = json.loads(old.stdout)["aip_id"], json.loads(young.stdout)["aip_id"]
    anna = _token(data_dir, "archivist", "anna")
    bart = _token(data_dir, "archivist", "bart")
    citizen = _token(data_dir, "citizen", OWNER_A)

    # No token, or not an archivist's: refused before anything happens.
    assert run(data_dir, "retention", "sweep").returncode == 77
    assert run(data_dir, "retention", "sweep", "--token", citizen).returncode == 77
    assert run(data_dir, "retention", "sweep", "--token", "not-a-jwt").returncode == 77

    swept = run(data_dir, "retention", "sweep", "--token", anna)
    assert swept.returncode == 0, swept.stderr
    proposal = json.loads(swept.stdout)
    assert proposal["items"] == 1 and proposal["state"] == "open"
    pid = proposal["id"]
    shown = run(data_dir, "retention", "proposals", pid, "--items", "--token", anna)
    assert old_id in shown.stdout and young_id not in shown.stdout

    assert run(data_dir, "retention", "execute", pid, "--token", anna).returncode == 4
    assert run(data_dir, "retention", "review", pid, "--token", anna).returncode == 0
    same = run(data_dir, "retention", "approve", pid, "--token", anna)
    assert same.returncode == 77 and "different archivist" in same.stderr
    assert run(data_dir, "retention", "approve", pid, "--token", bart).returncode == 0

    executed = run(data_dir, "retention", "execute", pid, "--token", bart)
    assert executed.returncode == 0, executed.stderr
    result = json.loads(executed.stdout)
    assert result["destroyed"] == 1
    out_dir = tmp_path / "evidence"
    shown_cert = run(data_dir, "retention", "certificate", result["certificate_id"],
                     "--out", str(out_dir), "--token", anna)  # fmt: skip
    assert shown_cert.returncode == 0, shown_cert.stderr
    report = json.loads(shown_cert.stdout)
    assert report["signature"]["ok"] is True
    assert (out_dir / f"{result['certificate_id']}.p7s").stat().st_size > 500

    listed = run(data_dir, "retention", "proposals", "--json", "--token", anna)
    assert json.loads(listed.stdout)[0]["state"] == "executed"
    gone = run(data_dir, "get", old_id)
    assert gone.returncode == 3
    again = ingest(data_dir, pdf_file, "--ref", "OLD", "--issued-on", "2011-05-05")
    assert again.returncode == 4 and "disposed of" in again.stderr
