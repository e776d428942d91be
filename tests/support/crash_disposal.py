"""Execute a disposal proposal in this process and SIGKILL it at a chosen point (crash tests).

Usage: python -m tests.support.crash_disposal DATA_DIR PROPOSAL_ID POINT
POINT: ``ops:N`` (killed as the N-th storage write or delete of this run is about to happen;
a batch delete is killed after half of its keys),
``after-certificate-json`` (killed right after the certificate JSON is stored, before its
signature) or ``none`` (run to the end). Batches of 7 items, so a run spans many journal
batches. Prints the execution result as JSON when it gets to the end.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from archive.storage.fs import FsStorage
from kluis.settings import KluisSettings
from kluis.wiring import build_services

BATCH = 7


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    data_dir, proposal_id, point = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    services = build_services(KluisSettings(data_dir=data_dir))
    storage = services.storage
    count = [0]
    limit = int(point.split(":", 1)[1]) if point.startswith("ops:") else None

    def counted(original: Any) -> Any:
        def call(key: Any, *args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            if limit is not None and count[0] >= limit:
                if original.__name__ == "delete_many" and len(key) > 1:
                    original(key[: len(key) // 2])  # killed half-way through a batch delete
                die()
            result = original(key, *args, **kwargs)
            if not isinstance(key, str):
                return result
            certificate_json = key.startswith("certificates/") and key.endswith(".json")
            if (
                point == "after-certificate-json"
                and certificate_json
                and original.__name__ == "put"
            ):
                die()
            return result

        return call

    if isinstance(storage, FsStorage):
        # Every batch delete through the removal worker process: killed with its parent.
        storage.OFFLOAD_FROM = 1
    for name in ("put", "put_new", "delete", "delete_many", "set_legal_hold"):
        setattr(storage, name, counted(getattr(storage, name)))
    result = services.disposal.execute(proposal_id, "executor-x", batch_items=BATCH)
    print(json.dumps(result.__dict__))
    services.close()


if __name__ == "__main__":
    main()
