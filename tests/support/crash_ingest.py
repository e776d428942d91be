"""Run one ingest in this process and SIGKILL it at a chosen point (for crash tests).

Usage: python -m tests.support.crash_ingest DATA_DIR PDF_FILE POINT
       python -m tests.support.crash_ingest zygote PDF_FILE   (see ``zygote`` below)
POINT: ``before-root-mets`` (killed as the commit marker is about to be written) or
``after-store`` (killed after the package is committed, before it is indexed).
"""

from __future__ import annotations

import dataclasses
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
    if sys.argv[1] == "zygote":
        zygote(Path(sys.argv[2]))
        return
    data_dir, pdf_file, point = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    services = build_services(KluisSettings(data_dir=Path(data_dir)))
    if point == "before-root-mets":
        put_batches = services.storage.put_batches

        def put_then_die(batches: Any, **kwargs: Any) -> None:
            # Every batch before the marker's, the intent included (fs would leave it out when
            # a fresh package directory appears with one rename: this is the state of S3, or
            # of fs without that rename), then the kill.
            put_batches([dataclasses.replace(b, redo=False) for b in batches if not b.exclusive])
            die()

        services.storage.put_batches = put_then_die  # type: ignore[method-assign]
    elif point == "after-store":
        services.index.submit = lambda documents: die()  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown point {point}")
    services.ingestor.ingest(
        Submission("OVO000001", "85073003328", "attest", "Attest", "CRASH"),
        pdf_file.read_bytes(),
    )
    raise SystemExit("the crash point was never reached")


# -- the zygote: many cheap SIGKILLs ---------------------------------------------------------
#
# ``python -m tests.support.crash_ingest zygote PDF_FILE`` imports everything once, then reads
# commands from stdin. ``run N`` forks a child that builds the services from the environment
# (KLUIS_DATA_DIR, KLUIS_STORAGE, KLUIS_S3__*) and ingests references ``R-N``, ``R-N+1``, ...
# in a loop, writing ``ACK <ref> <aip_id> <sha256 of the signed PDF> <created>`` after each
# receipt (one write(2) each, so a kill never tears a line) and ``BUSY <ref>`` when a
# reference is still claimed by a killed ingest. The zygote prints ``PID <pid>``, waits for
# the child (the test SIGKILLs it) and prints ``DEAD <pid> <status>``. A kill costs a fork,
# not a Python start-up.


def _child_loop(pdf: bytes, start: int) -> None:
    from ingest.errors import IngestInProgressError
    from ingest.pipeline import IngestLimits

    services = build_services(KluisSettings())
    services.ingestor._limits = IngestLimits(wait_for_concurrent=0.0)
    os.write(1, b"UP\n")
    n = start
    while True:
        ref = f"R-{n}"
        try:
            result = services.ingestor.ingest(
                Submission("OVO000001", "85073003328", "attest", f"Attest {n}", ref), pdf
            )
            line = f"ACK {ref} {result.receipt.aip_id} {result.receipt.sha256} {result.created}\n"
        except IngestInProgressError:
            line = f"BUSY {ref}\n"
        os.write(1, line.encode())
        n += 1


def zygote(pdf_file: Path) -> None:
    pdf = pdf_file.read_bytes()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    for command in sys.stdin:
        verb, _, arg = command.strip().partition(" ")
        if verb != "run":
            break
        pid = os.fork()
        if pid == 0:
            try:
                _child_loop(pdf, int(arg))
            finally:
                os._exit(1)
        sys.stdout.write(f"PID {pid}\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(f"DEAD {pid} {status}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
