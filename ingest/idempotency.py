"""Agency references as idempotency keys, kept in storage itself.

A claim ``ingest-keys/<agency>/<sha256(ref)>.json`` is created with the store's
conditional create before a package is committed, so two racing ingests of one reference
produce one package and no separate database is needed. A claim names the package and
the SHA-256 of the submitted PDF: a retry with the same bytes gets the same receipt, a
retry with other bytes is a conflict.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from datetime import datetime

from archive.destruction import read_tombstone
from archive.errors import ObjectNotFoundError
from archive.storage.base import Storage

PREFIX = "ingest-keys/"


@dataclass(frozen=True)
class Claim:
    agency_id: str
    agency_ref: str
    aip_id: str
    submitted_sha256: str
    claimed_at: datetime

    def to_json(self) -> bytes:
        data = asdict(self)
        data["claimed_at"] = self.claimed_at.isoformat()
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Claim:
        data = json.loads(raw)
        data["claimed_at"] = datetime.fromisoformat(data["claimed_at"])
        return cls(**data)


def claim_key(agency_id: str, agency_ref: str) -> str:
    # The reference is free text: hash it into a safe, fixed-length key segment.
    digest = hashlib.sha256(agency_ref.encode()).hexdigest()
    return f"{PREFIX}{agency_id}/{digest}.json"


class ClaimLedger:
    """Reads and creates claims in a Storage."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def find(self, agency_id: str, agency_ref: str) -> Claim | None:
        """Raises: StorageUnavailableError."""
        try:
            with self._storage.open(claim_key(agency_id, agency_ref)) as f:
                return Claim.from_json(f.read())
        except ObjectNotFoundError:
            return None

    def create(self, claim: Claim) -> None:
        """Create the claim unless one exists.

        Raises:
            ObjectExistsError: another ingest claimed the reference first.
            StorageUnavailableError.
        """
        raw = claim.to_json()
        self._storage.put(
            claim_key(claim.agency_id, claim.agency_ref),
            io.BytesIO(raw),
            size=len(raw),
            sha256=hashlib.sha256(raw).hexdigest(),
            if_absent=True,
        )

    def disposed(self, aip_id: str) -> bool:
        """Whether the claimed document was disposed of (it left a tombstone): its claim
        stays so that a retry of the reference is answered "gone", not re-archived.

        Raises: StorageUnavailableError."""
        return read_tombstone(self._storage, aip_id) is not None

    def release(self, claim: Claim) -> None:
        """Remove a claim whose package was never committed. Raises: StorageUnavailableError."""
        self._storage.delete(claim_key(claim.agency_id, claim.agency_ref))

    def claims(self) -> list[Claim]:
        """Every claim (for reconcile). Raises: StorageUnavailableError."""
        found = []
        for key in self._storage.keys(PREFIX):
            try:
                with self._storage.open(key) as f:
                    found.append(Claim.from_json(f.read()))
            except ObjectNotFoundError:
                continue
        return found
