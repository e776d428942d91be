"""SigningPolicy: what a Kluis seal looks like (PAdES level, digest, reason, location, field).

A plain frozen value owned by this package; ``kluis/wiring.py`` builds it from settings.
Only B-B exists in the walking skeleton. To add a level, extend :data:`PadesLevel` and
:data:`SUPPORTED_LEVELS`; :class:`signing.pades.PadesSigner` refuses levels it cannot produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["SUPPORTED_DIGESTS", "SUPPORTED_LEVELS", "PadesLevel", "SigningPolicy"]

PadesLevel = Literal["B-B"]
"""PAdES baseline levels Kluis can produce (ETSI EN 319 142-1). Later: B-T, B-LT, B-LTA."""

SUPPORTED_LEVELS: Final[tuple[str, ...]] = get_args(PadesLevel)

SUPPORTED_DIGESTS: Final[frozenset[str]] = frozenset({"sha256", "sha384", "sha512"})
"""Digests allowed by ETSI TS 119 312 for new signatures (SHA-1 and MD5 are refused)."""


@dataclass(frozen=True)
class SigningPolicy:
    """How to seal a document.

    Raises:
        ValueError: on construction, for an unknown level or digest or an empty field name.
    """

    level: PadesLevel = "B-B"
    """PAdES baseline level to produce."""

    digest: str = "sha256"
    """Message digest for the document hash and the CMS signed attributes."""

    reason: str = "Gearchiveerd door Kluis"
    """/Reason entry of the signature dictionary (shown by PDF readers)."""

    location: str = "Vlaanderen"
    """/Location entry of the signature dictionary."""

    field_name: str = "KluisSeal"
    """Name of the new signature field; a numeric suffix is added if the name is taken."""

    def __post_init__(self) -> None:
        if self.level not in SUPPORTED_LEVELS:
            raise ValueError(f"unsupported PAdES level {self.level!r}; use {SUPPORTED_LEVELS}")
        if self.digest not in SUPPORTED_DIGESTS:
            raise ValueError(f"unsupported digest {self.digest!r}; use {sorted(SUPPORTED_DIGESTS)}")
        if not self.field_name or "." in self.field_name:
            # '.' separates parent and child in fully qualified PDF field names.
            raise ValueError(f"invalid signature field name {self.field_name!r}")
