"""Run one ingest in this process and SIGKILL it at a chosen point (for crash tests).

Usage: python -m tests.support.crash_ingest DATA_DIR PDF_FILE POINT
POINT: ``before-root-mets`` (killed as the commit marker is about to be written) or
``after-store`` (killed after the package is committed, before it is indexed).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from ingest.submission import Submission
from kluis.settings import KluisSettings
from kluis.wiring import build_services


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data_dir, pdf_file, point = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    services = build_services(KluisSettings(data_dir=Path(data_dir)))
    if point == "before-root-mets":
        put = services.storage.put

        def put_then_die(key: str, *args: Any, **kwargs: Any) -> Any:
            if key.startswith("aips/") and key.count("/") == 2 and key.endswith("/METS.xml"):
                die()
            return put(key, *args, **kwargs)

        services.storage.put = put_then_die  # type: ignore[method-assign]
    elif point == "after-store":
        services.index.submit = lambda documents: die()  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown point {point}")
    services.ingestor.ingest(
        Submission("OVO000001", "85073003328", "attest", "Attest", "CRASH"),
        pdf_file.read_bytes(),
    )
    raise SystemExit("the crash point was never reached")


if __name__ == "__main__":
    main()
