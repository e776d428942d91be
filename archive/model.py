"""Value types of the archive: document metadata, package contents, stored objects.

All are frozen dataclasses; they cross package boundaries (ingest builds them, search
projects them, the API shows them) and never carry storage-engine types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

OwnerKind = Literal["person", "enterprise"]


@dataclass(frozen=True)
class DocumentMetadata:
    """What an agency says about a document; stored as the AIP's descriptive metadata."""

    owner_id: str
    """National register number (11 digits) or enterprise number (10 digits), digits only."""
    owner_kind: OwnerKind
    agency_id: str
    """The sending agency, e.g. ``OVO000001``."""
    document_type: str
    """A type code from the selection list, e.g. ``attest``."""
    title: str
    issued_on: date
    """The date the agency issued the document; retention counts from it by default."""
    agency_ref: str
    """The agency's own reference; unique per agency, the idempotency key of ingest."""
    language: str = "nl"
    retention_until: date | None = None
    """End of the retention period as computed at ingest; None when the document is kept
    permanently or its event trigger date is still pending. Later changes (a new selection
    list, a delivered event date) are retention records next to the package, not edits."""
    retention_list_version: str | None = None
    """Version of the selection list whose rule (the one for ``document_type``) applied at
    ingest; None for packages archived before lists were recorded."""
    retention_trigger: str | None = None
    """What the period counts from under that rule: ``issued_on`` or ``event:<name>``."""
    retention_period: str | None = None
    """The rule's ISO 8601 period, e.g. ``P10Y`` (None for ``keep``)."""
    retention_action: str | None = None
    """The rule's final action: ``destroy``, ``transfer`` or ``keep``."""


@dataclass(frozen=True)
class RetentionTerms:
    """The retention a selection-list rule gives one document at ingest."""

    list_version: str
    trigger: str
    """``issued_on`` or ``event:<name>``."""
    action: str
    period: str | None
    retention_until: date | None
    """The computed end; None when kept permanently or the event date is pending."""
    lock_until: date | None
    """The object-lock retain-until date: the end, or its lower bound while an event date
    is pending; None when kept permanently."""


@dataclass(frozen=True)
class SignatureInfo:
    """The archive's record of the signature applied at ingest."""

    level: str
    """PAdES baseline level reached: ``B-B``, ``B-T``, ``B-LT`` or ``B-LTA``."""
    signed_at: datetime
    signer_subject: str
    """RFC 4514 subject of the signing certificate."""
    certificate_sha256: str


@dataclass(frozen=True)
class Agent:
    """A PREMIS agent: who or what took part in an event."""

    identifier: str
    name: str
    agent_type: Literal["organization", "software", "person"]


@dataclass(frozen=True)
class PremisEvent:
    """A PREMIS event; events are only ever appended, never rewritten."""

    identifier: str
    event_type: str
    """A PREMIS event type term, e.g. ``ingestion``, ``digital signature generation``."""
    at: datetime
    outcome: Literal["success", "failure"]
    detail: str
    agent_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class PackageInput:
    """Everything needed to build one AIP for one signed document."""

    aip_id: str
    """A UUID string; the package's METS OBJID is ``urn:uuid:<aip_id>``."""
    metadata: DocumentMetadata
    signed_pdf: bytes
    original_sha256: str
    """SHA-256 of the PDF as the agency submitted it (revision 1 of the signed PDF)."""
    pdf_name: str
    """File name of the PDF inside the representation, e.g. ``document.pdf``."""
    text: str
    """Plain text extracted from the PDF; stored in the package so reindex needs no parsing."""
    signature: SignatureInfo
    created_at: datetime
    events: tuple[PremisEvent, ...]
    agents: tuple[Agent, ...]
    previous_aip_id: str | None = None
    """E-ARK AIP versioning: the package this one is a new version of (its root METS points
    to it); None for a document's first package."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a package with its fixity."""

    path: str
    """Path inside the package, e.g. ``representations/rep1/data/document.pdf``."""
    size: int
    sha256: str
    mime_type: str


@dataclass(frozen=True)
class Preservation:
    """What a manifest takes from the package's PREMIS."""

    original_sha256: str
    signature: SignatureInfo
    events: tuple[PremisEvent, ...] = ()


@dataclass(frozen=True, init=False)
class AipManifest:
    """A committed package as read back from storage (root METS + descriptive + PREMIS).

    ``original_sha256``, ``signature`` and ``events`` come from the PREMIS file. A manifest
    read from storage reads that file, checks it against the root METS and parses it only
    when one of the three is first used: a download needs none of them, and reading and
    parsing PREMIS cost more than all of a download's other file reads together. That first
    use raises :class:`archive.errors.IntegrityError` if the bytes differ from what the root
    METS lists, :class:`archive.errors.InvalidPackageError` if the file is missing or not a
    Kluis PREMIS, :class:`archive.errors.HostileXmlError` if it is not safe XML, and the
    storage's errors (``StorageUnavailableError``); a failed use is not cached. Give either
    the three values or ``preservation`` (a function that reads and parses them; it is
    called until it succeeds once per manifest and thread).
    """

    aip_id: str
    metadata: DocumentMetadata
    files: tuple[FileEntry, ...]
    """Every file of the package except the root METS itself."""
    pdf_path: str
    text_path: str
    created_at: datetime
    root_mets_sha256: str
    """SHA-256 of the root METS bytes: the package's manifest hash."""
    previous_aip_id: str | None
    """The package this one is a new version of (None for a first version)."""
    _preservation: Preservation | Callable[[], Preservation] = field(repr=False, compare=False)

    def __init__(
        self,
        *,
        aip_id: str,
        metadata: DocumentMetadata,
        files: tuple[FileEntry, ...],
        pdf_path: str,
        text_path: str,
        created_at: datetime,
        original_sha256: str | None = None,
        signature: SignatureInfo | None = None,
        events: tuple[PremisEvent, ...] = (),
        root_mets_sha256: str = "",
        previous_aip_id: str | None = None,
        preservation: Callable[[], Preservation] | None = None,
    ) -> None:
        if preservation is None:
            if original_sha256 is None or signature is None:
                raise TypeError("give original_sha256 and signature, or preservation")
            source: Preservation | Callable[[], Preservation]
            source = Preservation(original_sha256, signature, events)
        elif original_sha256 is not None or signature is not None or events:
            raise TypeError("give original_sha256, signature and events or preservation")
        else:
            source = preservation
        values = (
            aip_id,
            metadata,
            files,
            pdf_path,
            text_path,
            created_at,
            root_mets_sha256,
            previous_aip_id,
            source,
        )
        for name, value in zip(_MANIFEST_FIELDS, values, strict=True):
            object.__setattr__(self, name, value)  # frozen: the generated __init__ does so too

    @property
    def preservation(self) -> Preservation:
        """The PREMIS part (parsed now if not yet).

        Raises:
            InvalidPackageError, HostileXmlError: see the class docstring.
        """
        source = self._preservation
        if isinstance(source, Preservation):
            return source
        parsed = source()
        # A cache: a committed package's files never change (a changed one fails its check).
        object.__setattr__(self, "_preservation", parsed)
        return parsed

    @property
    def original_sha256(self) -> str:
        """SHA-256 of the PDF as the agency submitted it. Raises: as :attr:`preservation`."""
        return self.preservation.original_sha256

    @property
    def signature(self) -> SignatureInfo:
        """Raises: as :attr:`preservation`."""
        return self.preservation.signature

    @property
    def events(self) -> tuple[PremisEvent, ...]:
        """The package's own PREMIS events. Raises: as :attr:`preservation`."""
        return self.preservation.events

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AipManifest):
            return NotImplemented
        head = [getattr(self, name) for name in _MANIFEST_FIELDS[:-1]]
        other_head = [getattr(other, name) for name in _MANIFEST_FIELDS[:-1]]
        return head == other_head and self.preservation == other.preservation

    @property
    def pdf(self) -> FileEntry:
        return next(f for f in self.files if f.path == self.pdf_path)


_MANIFEST_FIELDS = (
    "aip_id",
    "metadata",
    "files",
    "pdf_path",
    "text_path",
    "created_at",
    "root_mets_sha256",
    "previous_aip_id",
    "_preservation",
)


@dataclass(frozen=True)
class BuiltPackage:
    """The files of one AIP, ready to store; ``root_mets`` is written last (commit marker)."""

    aip_id: str
    files: dict[str, bytes] = field(default_factory=dict)
    """Every file except the root METS, by path inside the package."""
    root_mets: bytes = b""


@dataclass(frozen=True)
class StoredObject:
    """What a backend knows about one stored object."""

    key: str
    size: int
    sha256: str
    retain_until: datetime | None = None
    legal_hold: bool = False


@dataclass(frozen=True)
class IndexRecord:
    """What the search projection needs of one document, read in one pass from its newest
    version (:meth:`archive.store.AipStore.index_record`). PREMIS is not read."""

    document_id: str
    """The id of the document's first package: the key receipts and the index use."""
    aip_id: str
    """The newest committed version (equals ``document_id`` for an unversioned document)."""
    metadata: DocumentMetadata
    """The newest version's descriptive metadata."""
    created_at: datetime
    """When the document was archived: the first version's root METS ``CREATEDATE`` (a new
    version, e.g. a renewed signature, does not make a document newer)."""
    text: str
    """The newest version's extracted text, checked against its root METS."""
    on_hold: bool = False
    """Under a legal hold (set by the retention projection from the hold markers; the
    package itself never records holds)."""
