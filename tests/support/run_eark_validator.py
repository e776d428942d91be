"""Run the E-ARK Foundation's eark-validator 1.1.3 offline and print its reports as JSON.

Executed by ``.venv-eark/bin/python`` (eark-validator pins lxml 5.1, which our stack cannot
use), never imported by the test suite. Usage::

    .venv-eark/bin/python -I tests/support/run_eark_validator.py PACKAGE_DIR [...]

At import time eark-validator downloads four CSIP vocabularies with ``urllib.request.urlopen``
(``eark_validator/ipxml/schematron.py``). The same files ship inside the package under
``ipxml/resources/vocabs``; this runner replaces ``urlopen`` with a reader of those files
*before* importing the validator, and makes every other network use fail loudly.

Output: ``{"<package dir name>": {"structure": {...}, "schema": {...}, "schematron": {...}}}``
with each part's ``status`` and ``messages`` (rule_id, severity, message, location).
"""

from __future__ import annotations

import importlib.util
import io
import json
import socket
import sys
import urllib.request
from pathlib import Path
from typing import Any

_spec = importlib.util.find_spec("eark_validator")
if _spec is None or _spec.origin is None:
    raise SystemExit("eark_validator is not installed in this interpreter")
VOCABS = Path(_spec.origin).parent / "ipxml" / "resources" / "vocabs"
VOCABULARY_HOST = "https://earkcsip.dilcis.eu/schema/"


def _offline_urlopen(url: Any, *args: Any, **kwargs: Any) -> io.BytesIO:
    name = str(getattr(url, "full_url", url))
    if not name.startswith(VOCABULARY_HOST):
        raise OSError(f"network access refused (offline runner): {name}")
    local = VOCABS / name.removeprefix(VOCABULARY_HOST)
    if not local.is_file():
        raise OSError(f"no shipped copy of vocabulary {name} in {VOCABS}")
    return io.BytesIO(local.read_bytes())


def _no_network(*args: Any, **kwargs: Any) -> None:
    raise OSError("network access refused (offline runner)")


urllib.request.urlopen = _offline_urlopen
socket.create_connection = _no_network  # type: ignore[assignment]

from eark_validator.packages import PackageValidator  # noqa: E402  (must follow the patch)


def _messages(part: Any) -> list[dict[str, Any]]:
    return [
        {
            "rule_id": m.rule_id,
            "severity": str(getattr(m.severity, "value", m.severity)),
            "message": m.message,
            "location": m.location,
        }
        for m in (part.messages if part is not None else [])
    ]


def _status(part: Any) -> str | None:
    status = getattr(part, "status", None)
    return None if status is None else str(getattr(status, "value", status))


def report(package: Path) -> dict[str, Any]:
    result = PackageValidator(package).validation_report
    metadata = result.metadata
    return {
        "structure": {"status": _status(result.structure), "messages": _messages(result.structure)},
        "schema": {
            "status": _status(metadata.schema_results if metadata else None),
            "messages": _messages(metadata.schema_results if metadata else None),
        },
        "schematron": {
            "status": _status(metadata.schematron_results if metadata else None),
            "messages": _messages(metadata.schematron_results if metadata else None),
        },
    }


def main(argv: list[str]) -> int:
    reports = {Path(arg).name: report(Path(arg)) for arg in argv}
    json.dump(reports, sys.stdout, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
