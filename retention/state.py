"""What storage says about a document's retention: the facts disposal decides on.

The stored package and the retention records next to it are the truth (principle 2); the
index only projects them. Everything that deletes (disposal execution) decides from a
:class:`RetentionState` read through a :class:`RetentionFacts` implementation, never from
the index alone.

Invariants: ``retention_until`` is never earlier than the date the period computed by the
rule that applied; ``locked_until`` is the object-lock retention actually in force on the
package (it may be later than ``retention_until`` when a newer list shortened a period:
COMPLIANCE locks are never shortened, so the package stays until the lock ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from retention.selection_list import Action

__all__ = ["RetentionFacts", "RetentionState"]


@dataclass(frozen=True)
class RetentionState:
    """One document's retention as recorded in storage."""

    document_id: str
    """The id of the document's first package (the id receipts and the index use)."""
    document_type: str
    action: Action
    """What happens at the end: ``destroy``, ``transfer`` or ``keep``."""
    list_version: str
    """Version of the selection list whose rule decided ``retention_until``."""
    trigger_date: date | None
    """The date the period counts from; ``None`` while an event trigger is still pending."""
    retention_until: date | None
    """End of the retention period; ``None``: kept permanently or trigger pending."""
    locked_until: date | None
    """Object-lock retention in force on the package's objects (``None``: no lock)."""
    holds: tuple[str, ...] = ()
    """Ids of the legal holds in force on the document."""
    versions: tuple[str, ...] = ()
    """AIP ids of the committed versions, oldest (``document_id``) first, as read for this
    state (empty when the implementation does not say)."""
    root_mets_sha256: tuple[str, ...] = ()
    """SHA-256 of each version's root METS (its manifest hash), in ``versions`` order, from
    the same reads the state was decided on: disposal records them without reading again."""

    @property
    def on_hold(self) -> bool:
        return bool(self.holds)

    def disposable_on(self) -> date | None:
        """The first day the package may be destroyed or transferred, or ``None`` when
        it never may (``keep``, trigger pending). Holds are not considered here."""
        if self.action == "keep" or self.retention_until is None:
            return None
        if self.locked_until is not None and self.locked_until > self.retention_until:
            return self.locked_until
        return self.retention_until

    def is_due(self, today: date) -> bool:
        """True when the rule's final action may be carried out today: not kept, trigger
        known, period and lock ended, and no legal hold in force."""
        first = self.disposable_on()
        return first is not None and first <= today and not self.on_hold


class RetentionFacts(Protocol):
    """Reads retention states from storage (implemented in :mod:`retention.records`)."""

    def state(self, document_id: str) -> RetentionState:
        """The document's retention as storage records it now.

        Raises:
            PackageNotFoundError: no committed document has this id (e.g. destroyed).
            StorageUnavailableError.
        """
        ...
