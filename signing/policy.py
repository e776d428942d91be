"""SigningPolicy: what a Kluis seal looks like (PAdES level, digest, reason, location, field).

A plain frozen value owned by this package; ``kluis/wiring.py`` builds it from settings.
Every level above B-B needs a time-stamping authority (``tsa_url``). Recommended flow for
services (REPORT §2/§7): seal at B-T on intake, then let a scheduled job raise the document
to B-LTA with :func:`signing.upkeep.augment` once revocation data post-dates the signature
time-stamp; B-LT/B-LTA in one shot embed revocation data fetched *before* the time-stamp,
which strict EN 319 102-1 validation reports as INDETERMINATE/NO_POE until an archive
time-stamp exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["SUPPORTED_DIGESTS", "SUPPORTED_LEVELS", "PadesLevel", "SigningPolicy"]

PadesLevel = Literal["B-B", "B-T", "B-LT", "B-LTA"]
"""PAdES baseline levels Kluis can produce (ETSI EN 319 142-1)."""

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

    tsa_url: str | None = None
    """RFC 3161 time-stamping authority (http/https); required for B-T and above."""

    def __post_init__(self) -> None:
        if self.level not in SUPPORTED_LEVELS:
            raise ValueError(f"unsupported PAdES level {self.level!r}; use {SUPPORTED_LEVELS}")
        if self.digest not in SUPPORTED_DIGESTS:
            raise ValueError(f"unsupported digest {self.digest!r}; use {sorted(SUPPORTED_DIGESTS)}")
        if self.level != "B-B" and not self.tsa_url:
            raise ValueError(f"PAdES level {self.level} needs a tsa_url")
        if self.tsa_url and not self.tsa_url.startswith(("http://", "https://")):
            raise ValueError(f"tsa_url must be an http(s) URL, got {self.tsa_url!r}")
        if not self.field_name or "." in self.field_name:
            # '.' separates parent and child in fully qualified PDF field names.
            raise ValueError(f"invalid signature field name {self.field_name!r}")
