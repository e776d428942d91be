"""Errors of the archive package. Every storage backend raises only these."""

from __future__ import annotations

from datetime import datetime


class ArchiveError(Exception):
    """Root of everything the archive package raises."""


class ObjectNotFoundError(ArchiveError):
    """No object is stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no object under {key!r}")
        self.key = key


class ObjectExistsError(ArchiveError):
    """A conditional create found an object already stored under the key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"an object already exists under {key!r}")
        self.key = key


class ObjectLockedError(ArchiveError):
    """The object is under retention or legal hold and may not be deleted."""

    def __init__(self, key: str, retain_until: datetime | None, legal_hold: bool = False) -> None:
        why = "a legal hold" if legal_hold else f"retention until {retain_until:%Y-%m-%d}"
        super().__init__(f"object {key!r} is protected by {why}")
        self.key = key
        self.retain_until = retain_until
        self.legal_hold = legal_hold


class InvalidKeyError(ArchiveError):
    """The key is not a relative '/'-separated path of safe segments."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid storage key {key!r}: {reason}")
        self.key = key


class StorageUnavailableError(ArchiveError):
    """The storage backend cannot be reached or failed transiently; retrying may succeed."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend} storage unavailable: {detail}")
        self.backend = backend


class IntegrityError(ArchiveError):
    """Bytes read or written do not match their expected SHA-256."""

    def __init__(self, key: str, expected: str, actual: str) -> None:
        super().__init__(f"{key!r}: expected sha256 {expected}, got {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class PackageNotFoundError(ArchiveError):
    """No committed package (root METS present) has this id."""

    def __init__(self, aip_id: str) -> None:
        super().__init__(f"no archived package {aip_id!r}")
        self.aip_id = aip_id


class InvalidPackageError(ArchiveError):
    """A stored package or metadata file cannot be read as a Kluis AIP."""

    def __init__(self, aip_id: str, reason: str) -> None:
        super().__init__(f"package {aip_id!r} is not readable: {reason}")
        self.aip_id = aip_id
        self.reason = reason


class HostileXmlError(ArchiveError):
    """XML input uses DTDs, entities or network access, or does not parse."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"rejected XML: {reason}")
        self.reason = reason


class PackageCommittedError(ArchiveError):
    """The package is committed (root METS present) and therefore immutable."""

    def __init__(self, aip_id: str, action: str) -> None:
        super().__init__(f"package {aip_id!r} is committed and immutable; refusing to {action}")
        self.aip_id = aip_id
        self.action = action


class LeaseBusyError(ArchiveError):
    """Another instance holds the job's lease (or won the race to take it)."""

    def __init__(self, job: str, holder: str, expires: datetime | None) -> None:
        until = f" until {expires.isoformat()}" if expires is not None else ""
        super().__init__(f"job {job!r} is leased by {holder!r}{until}")
        self.job = job
        self.holder = holder
        self.expires = expires


class LeaseLostError(ArchiveError):
    """The holder no longer holds its lease: it expired or another instance took it over.
    The job must stop before its next unit of work."""

    def __init__(self, job: str, holder: str, reason: str) -> None:
        super().__init__(f"lease of job {job!r} lost by {holder!r}: {reason}")
        self.job = job
        self.holder = holder
        self.reason = reason


class InvalidLeaseError(ArchiveError):
    """A lease record in storage cannot be read (not written by Kluis)."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"lease record {key!r} is not readable: {reason}")
        self.key = key
        self.reason = reason
