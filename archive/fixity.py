"""Fixity: streaming SHA-256 and the per-file report of a package check.

Invariants: files are hashed in bounded chunks (memory does not grow with file size); a
report is an immutable value listing every file the root METS names, in path order.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, BinaryIO, Literal

__all__ = ["FileCheck", "FixityReport", "FixityStatus", "hash_stream"]

CHUNK = 1024 * 1024
FixityStatus = Literal["ok", "mismatch", "missing"]


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    """SHA-256 hex digest and byte count of everything left in ``stream``.

    Raises:
        Whatever ``stream.read`` raises (storage readers raise only ArchiveError).
    """
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


@dataclass(frozen=True)
class FileCheck:
    """The outcome for one file."""

    path: str
    status: FixityStatus
    expected_sha256: str
    expected_size: int
    actual_sha256: str | None = None
    """None when the file is missing."""
    actual_size: int | None = None


@dataclass(frozen=True)
class FixityReport:
    """Every file of one package checked against its root METS."""

    aip_id: str
    checked_at: datetime
    root_mets_sha256: str
    files: tuple[FileCheck, ...]

    @property
    def ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)

    @property
    def problems(self) -> tuple[FileCheck, ...]:
        return tuple(f for f in self.files if f.status != "ok")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready rendering (times as ISO 8601), for CLI and API output."""
        return {
            "aip_id": self.aip_id,
            "checked_at": self.checked_at.isoformat(),
            "root_mets_sha256": self.root_mets_sha256,
            "ok": self.ok,
            "files": [asdict(f) for f in self.files],
        }
