"""A second process for the multi-process tests: ``python -m tests.unit.search.index_worker``.

Modes:
    ``submit DIR AIP_ID``   submit one document, print the wall time after submit, exit
                            (like ``kluis ingest`` while the server runs).
    ``indexer DIR SECONDS`` start the indexer with that commit interval, print ``ready`` once
                            it holds the writer, then wait until stdin closes (like the server).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from search import IndexDocument, TantivyIndex


def make_document(aip_id: str) -> IndexDocument:
    return IndexDocument(
        aip_id=aip_id,
        owner_key="k" * 64,
        agency_id="OVO000001",
        document_type="attest",
        title="Attest van een ander proces",
        text="vergunningen",
        issued_on=date(2024, 1, 1),
        ingested_at=datetime.now(UTC),
        agency_ref=aip_id,
    )


def main(argv: list[str]) -> int:
    mode, directory = argv[0], Path(argv[1])
    if mode == "submit":
        with TantivyIndex(directory) as index:
            index.submit([make_document(argv[2])])
            print(time.time(), flush=True)
        return 0
    if mode == "indexer":
        index = TantivyIndex(directory, commit_interval=float(argv[2]))
        index.start_indexer()
        while not index.holds_writer:
            time.sleep(0.005)
        print("ready", flush=True)
        sys.stdin.read()
        index.close()
        return 0
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
