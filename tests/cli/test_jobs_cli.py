"""`kluis jobs run NAME` and `kluis jobs list` as an operator (or cron) runs them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from archive.leases import Leases
from kluis.settings import KluisSettings
from kluis.wiring import build_storage
from tests.cli.test_cli import ingest, run


def test_jobs_run_fixity_checks_packages_and_reports_corruption(
    data_dir: Path, tmp_path: Path, pdf: bytes
) -> None:
    pdf_file = tmp_path / "a.pdf"
    pdf_file.write_bytes(pdf)
    aip_id = json.loads(ingest(data_dir, pdf_file, "--ref", "J1").stdout)["aip_id"]

    ok = run(data_dir, "jobs", "run", "fixity", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["checked"] == [aip_id]

    stored = next((data_dir / "storage" / "aips" / aip_id).rglob("*.pdf"))
    stored.write_bytes(stored.read_bytes()[:-10])  # truncated on disk
    bad = run(data_dir, "jobs", "run", "fixity", "--json")
    assert bad.returncode == 1
    assert list(json.loads(bad.stdout)["corrupt"]) == [aip_id]

    unknown = run(data_dir, "jobs", "run", "no-such-job")
    assert unknown.returncode == 2 and "fixity" in unknown.stderr


def test_a_job_held_elsewhere_exits_75_and_list_shows_the_holder(data_dir: Path) -> None:
    storage = build_storage(KluisSettings(data_dir=data_dir))
    try:
        lease = Leases(storage, holder="replica-7").acquire("reconcile", timedelta(minutes=5))
        busy = run(data_dir, "jobs", "run", "reconcile")
        assert busy.returncode == 75, busy.stderr
        assert "replica-7" in busy.stderr

        listing = run(data_dir, "jobs", "list", "--json")
        assert listing.returncode == 0, listing.stderr
        rows = {r["job"]: r for r in map(json.loads, listing.stdout.splitlines())}
        assert rows["reconcile"]["state"] == "held"
        assert rows["reconcile"]["holder"] == "replica-7"
        assert rows["fixity"]["state"] == "free"
        assert rows["upkeep"]["interval_seconds"] == 0  # no tsa_url: off

        table = run(data_dir, "jobs", "list")
        assert "replica-7" in table.stdout and "held" in table.stdout

        lease.release()
        done = run(data_dir, "jobs", "run", "reconcile")
        assert done.returncode == 0, done.stderr
        assert "reconcile:" in done.stdout
    finally:
        storage.close()


def test_the_sweep_and_disposal_jobs_propose_and_execute_what_archivists_approved(
    data_dir: Path, tmp_path: Path, pdf: bytes
) -> None:
    pdf_file = tmp_path / "a.pdf"
    pdf_file.write_bytes(pdf)
    old = ingest(data_dir, pdf_file, "--ref", "OLD", "--issued-on", "2011-05-05")
    assert old.returncode == 0, old.stderr
    young = ingest(data_dir, pdf_file, "--ref", "YOUNG")
    old_id, young_id = json.loads(old.stdout)["aip_id"], json.loads(young.stdout)["aip_id"]

    swept = run(data_dir, "jobs", "run", "sweep")
    assert swept.returncode == 0, swept.stderr
    again = run(data_dir, "jobs", "run", "sweep")  # nothing new is due: no second proposal
    assert "no proposal" in again.stdout and "1 already proposed" in again.stdout
    anna, bart = (
        run(data_dir, "token", "--role", "archivist", "--sub", who).stdout.strip()
        for who in ("anna", "bart")
    )
    listed = run(data_dir, "retention", "proposals", "--json", "--token", anna)
    assert listed.returncode == 0, listed.stderr
    [proposal] = json.loads(listed.stdout)
    pid = proposal["id"]

    idle = run(data_dir, "jobs", "run", "disposal", "--json")  # not approved yet: nothing
    assert idle.returncode == 0 and json.loads(idle.stdout)["executed"] == []
    assert run(data_dir, "get", old_id).returncode == 0
    assert run(data_dir, "retention", "review", pid, "--token", anna).returncode == 0
    assert run(data_dir, "retention", "approve", pid, "--token", bart).returncode == 0

    done = run(data_dir, "jobs", "run", "disposal", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["executed"] == [pid] and summary["destroyed"] == 1
    assert len(summary["certificates"]) == 1
    assert run(data_dir, "get", old_id).returncode == 3
    assert run(data_dir, "get", young_id).returncode == 0
    repeat = run(data_dir, "jobs", "run", "disposal", "--json")  # executed: not again
    assert json.loads(repeat.stdout)["executed"] == []
