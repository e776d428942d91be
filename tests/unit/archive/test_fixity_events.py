"""Fixity: streaming re-hash against the root METS, recorded as NEW PREMIS event records.

Corruption is made for real: one flipped byte in the file on fs; a new object version written
over the PDF behind Kluis' back on s3 (Object Lock keeps the old version, but readers see
the new one).
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archive import layout
from archive.events import EventLog, check_fixity
from archive.model import BuiltPackage
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
from tests.support.s3 import S3Server, s3_server

_ids = (f"event-{n}" for n in itertools.count())


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Storage]]:
    storage: Storage
    storage = s3_server().storage() if request.param == "s3" else FsStorage(tmp_path / "store")
    try:
        yield request.param, storage
    finally:
        storage.close()


def _corrupt(kind: str, storage: Storage, key: str, tmp_path: Path) -> None:
    if kind == "fs":
        assert isinstance(storage, FsStorage)
        path = storage.root / key
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        server: S3Server = s3_server()
        bucket = storage.bucket  # type: ignore[attr-defined]
        forged = b"%PDF-1.7 forged"
        server.client().put_object(bucket, key, io.BytesIO(forged), len(forged))


def test_fixity_records_events_and_reports_corruption(
    backend: tuple[str, Storage], pkg: BuiltPackage, tmp_path: Path
) -> None:
    kind, storage = backend
    store = AipStore(storage)
    until = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    store.commit(pkg, retain_until=until)
    log = EventLog(storage)
    before = list(storage.keys(f"aips/{pkg.aip_id}/"))

    first = check_fixity(store, log, storage, pkg.aip_id, new_id=lambda: next(_ids))
    assert first.report.ok and first.event.outcome == "success"
    assert storage.stat(first.record_key).retain_until == until  # evidence is WORM too

    pdf_path = store.manifest(pkg.aip_id).pdf_path
    _corrupt(kind, storage, layout.aip_key(pkg.aip_id, pdf_path), tmp_path)
    second = check_fixity(store, log, storage, pkg.aip_id, new_id=lambda: next(_ids))
    assert not second.report.ok
    [problem] = second.report.problems
    assert problem.path == pdf_path and problem.status == "mismatch"
    assert second.event.outcome == "failure" and pdf_path in second.event.detail

    # Two separate records; the package's own files (metadata included) were not rewritten.
    events = log.events(pkg.aip_id)
    assert [e.outcome for e in events] == ["success", "failure"]
    assert list(storage.keys(f"aips/{pkg.aip_id}/")) == before
    for path in (layout.ROOT_METS, layout.PREMIS_PATH):
        with storage.open(layout.aip_key(pkg.aip_id, path)) as handle:
            assert handle.read() == (pkg.root_mets if path == layout.ROOT_METS else pkg.files[path])


def test_cli_fixity_samples_and_fails_on_corruption(data_dir: Path, pdf: bytes) -> None:
    from kluis.cli.main import app
    from tests.conftest import OWNER_A

    env = {"KLUIS_DATA_DIR": str(data_dir)}
    runner = CliRunner()
    pdf_file = data_dir / "doc.pdf"
    pdf_file.write_bytes(pdf)
    for ref in ("F1", "F2"):
        args = ["ingest", str(pdf_file), "--agency", "OVO000001", "--owner", OWNER_A]
        result = runner.invoke(app, [*args, "--type", "attest", "--ref", ref], env=env)
        assert result.exit_code == 0, result.output
    ok = runner.invoke(app, ["fixity", "--sample", "1"], env=env)
    assert ok.exit_code == 0, ok.output
    assert len([line for line in ok.stdout.splitlines() if line.startswith("{")]) == 1
    aip_id = json.loads(ok.stdout.splitlines()[0])["aip_id"]

    storage = FsStorage(data_dir / "storage")
    key = next(k for k in storage.keys(f"aips/{aip_id}/representations/rep1/data/"))
    path = storage.root / key
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    bad = runner.invoke(app, ["fixity"], env=env)
    assert bad.exit_code == 1
    reports = [json.loads(line) for line in bad.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["ok"] for r in reports) == [False, True]
    [broken] = [r for r in reports if not r["ok"]]
    assert broken["aip_id"] == aip_id and broken["problems"][0]["status"] == "mismatch"
    assert "CORRUPT" in bad.stderr and aip_id in bad.stderr
    assert len(list(storage.keys(f"events/{aip_id}/"))) == 2
