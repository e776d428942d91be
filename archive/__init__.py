"""The archive: E-ARK AIPs of signed documents, their metadata, and durable storage.

Plain Python (no web, CLI or scheduler frameworks) and imports no other Kluis package.
"""

from archive.errors import (
    ArchiveError,
    HostileXmlError,
    IntegrityError,
    InvalidKeyError,
    InvalidPackageError,
    ObjectExistsError,
    ObjectLockedError,
    ObjectNotFoundError,
    PackageCommittedError,
    PackageNotFoundError,
    StorageUnavailableError,
)
from archive.model import (
    Agent,
    AipManifest,
    BuiltPackage,
    DocumentMetadata,
    FileEntry,
    PackageInput,
    PremisEvent,
    Preservation,
    SignatureInfo,
    StoredObject,
)

__all__ = [
    "Agent",
    "AipManifest",
    "ArchiveError",
    "BuiltPackage",
    "DocumentMetadata",
    "FileEntry",
    "HostileXmlError",
    "IntegrityError",
    "InvalidKeyError",
    "InvalidPackageError",
    "ObjectExistsError",
    "ObjectLockedError",
    "ObjectNotFoundError",
    "PackageCommittedError",
    "PackageInput",
    "PackageNotFoundError",
    "PremisEvent",
    "Preservation",
    "SignatureInfo",
    "StorageUnavailableError",
    "StoredObject",
]
