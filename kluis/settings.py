"""KluisSettings: the one configuration model.

Sources, strongest first: constructor arguments > ``KLUIS_*`` environment variables
(nested with ``__``) > ``kluis.toml`` in the working directory (or ``KLUIS_CONFIG``) >
defaults. Unknown keys are errors, so a typo fails at start-up instead of being ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_SELECTION_LIST = Path(__file__).parent / "defaults" / "selectielijst.toml"


class AuthSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = "kluis-dev"
    """Expected ``iss`` of every token."""
    audience: str = "kluis"
    """Expected ``aud`` of every token."""
    jwks_file: Path | None = None
    """JSON Web Key Set with the public keys of the trusted token issuers (production)."""
    jwks_url: str | None = None
    """Or: the issuer's JWKS URL, cached and fetched again on an unknown ``kid``."""
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    leeway_seconds: int = 30
    """Clock skew allowed on ``exp`` and ``nbf``."""


class S3Settings(BaseModel):
    """An S3-compatible store with Object Lock (required when ``storage = "s3"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str
    """``https://host:port`` (or ``http://`` on loopback only)."""
    access_key: str
    secret_key: SecretStr
    bucket: str
    """A bucket created with Object Lock (which also turns on versioning)."""
    region: str = "us-east-1"
    secure: bool | None = None
    """TLS; None follows the endpoint's scheme."""
    guard_bucket: str | None = None
    """Unversioned bucket for conditional-create guards, for stores that ignore
    ``If-None-Match`` in versioned buckets (Ceph RGW 16); see ``archive/storage/s3.py``."""
    guard_timeout_seconds: float = Field(default=300.0, gt=0)
    """A guard whose object never appeared (its writer died) is taken over after this."""


class OpenSearchSettings(BaseModel):
    """The OpenSearch cluster (used when ``index = "opensearch"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = "https://localhost:9200"
    alias: str = "kluis-documents"
    """Kluis reads and writes this alias; indices are ``<alias>-<timestamp>`` (template
    ``<alias>``), and a full reindex swaps the alias to a freshly built one."""
    username: str | None = None
    password: SecretStr | None = None
    verify_certs: bool = True
    replicas: int = Field(default=1, ge=0)


class Pkcs12Settings(BaseModel):
    """A sealing key in a PKCS#12 file (required when ``signer = "pkcs12"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    passphrase: SecretStr | None = None


class Pkcs11Settings(BaseModel):
    """A sealing key in an HSM (required when ``signer = "pkcs11"``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    module: Path
    """The vendor's PKCS#11 library, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""
    token_label: str
    key_label: str
    cert_label: str | None = None
    """Label of the signer certificate on the token; defaults to ``key_label``."""
    pin: SecretStr


class SchedulerSettings(BaseModel):
    """The jobs ``kluis serve`` runs (``kluis jobs run NAME`` runs one once). Every job runs
    under a lease in storage, so replicas never run the same job at once. An interval of 0
    turns the job off in the scheduler."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lease_ttl_seconds: float = Field(default=120.0, gt=0)
    """How long a lease lasts unless renewed (the holder renews every third of it); a killed
    instance's jobs are taken over this long (plus the skew margin) after it died."""
    lease_skew_seconds: float = Field(default=5.0, ge=0)
    """Largest clock difference expected between instances: a taker waits this much longer."""
    fixity_interval_seconds: float = Field(default=3600.0, ge=0)
    """How often the fixity rotation checks its next ``fixity_sample_size`` packages."""
    fixity_sample_size: int = Field(default=200, gt=0)
    """Packages per fixity run: the whole archive is checked every
    (packages / sample size) runs."""
    upkeep_interval_seconds: float = Field(default=86400.0, ge=0)
    """How often signature upkeep examines its next ``upkeep_batch_size`` documents (needs
    ``tsa_url``; off without one)."""
    upkeep_batch_size: int = Field(default=500, gt=0)
    upkeep_horizon_days: int = Field(default=180, gt=0)
    """Renew evidence whose newest time-stamp (or certificate) expires within this many days."""
    upkeep_settle_seconds: float = Field(default=86400.0, ge=0)
    """B-T documents older than this are augmented to B-LTA (revocation data must post-date
    the signature time-stamp)."""
    sweep_interval_seconds: float = Field(default=86400.0, ge=0)
    """How often the disposal sweep proposes the documents whose retention ended."""
    disposal_interval_seconds: float = Field(default=3600.0, ge=0)
    """How often approved disposal proposals are executed (interrupted ones resumed)."""


class KluisSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KLUIS_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    mode: Literal["development", "production"] = "development"
    """Development mode trusts the locally generated token key and dev signing PKI."""
    data_dir: Path = Path("var")
    """Root of everything the embedded backends keep: packages, index, keys, secrets."""
    storage: Literal["fs", "s3"] = "fs"
    """Storage backend: ``fs`` under data_dir, or ``s3`` (the ``s3`` section) with Object Lock."""
    s3: S3Settings | None = None
    index: Literal["tantivy", "opensearch"] = "tantivy"
    """Index backend: embedded ``tantivy`` under data_dir, or ``opensearch`` (its section)."""
    opensearch: OpenSearchSettings = OpenSearchSettings()
    signer: Literal["dev", "pkcs12", "pkcs11"] = "dev"
    """Sealing key source: the generated dev PKI, a PKCS#12 file or an HSM (PKCS#11)."""
    pkcs12: Pkcs12Settings | None = None
    pkcs11: Pkcs11Settings | None = None
    signing_level: Literal["B-B", "B-T", "B-LT", "B-LTA"] = "B-B"
    """PAdES level at intake. Services use B-T and augment to B-LTA later (upkeep job)."""
    tsa_url: str | None = None
    """RFC 3161 time-stamping authority; required for signing levels above B-B."""
    trust_roots: tuple[Path, ...] = ()
    """PEM or DER root certificates for validation (the dev root is added in dev mode)."""
    selection_list: Path = DEFAULT_SELECTION_LIST
    """The selectielijst (TOML) that defines document types and their retention."""
    max_pdf_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    reconcile_interval_seconds: float = Field(default=300, ge=0)
    """How often ``kluis serve`` cleans up after crashed ingests and indexes what the index
    lacks; 0 turns the job off."""
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """Largest HTTP request body; larger requests get 413 before anything is read."""
    rate_limit_per_second: float = Field(default=50.0, gt=0)
    """Per-client token bucket (per replica): sustained requests per second."""
    rate_limit_burst: int = Field(default=100, gt=0)
    owner_key_secret: SecretStr | None = None
    """HMAC secret for owner keys in the index; generated under data_dir when unset."""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64)
    """HTTP worker processes of ``kluis serve``; each gets 1/workers of the rate limit."""
    ingest_processes: int = Field(default=0, ge=0, le=64)
    """Ingest processes of the server, shared by all its HTTP workers: deposits compute in
    these instead of the workers' threads (one Python process computes on one core). 0: in
    the worker, as in tests. On C cores, 2 x C keeps every core busy through the deposits'
    fsync waits, as the best CLI batch layout (2 x C processes) does. With ingest processes
    a depositor's connection is kept open (without them, with several workers, it is closed
    after each deposit to spread deposits over the workers)."""
    auth: AuthSettings = AuthSettings()
    scheduler: SchedulerSettings = SchedulerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("KLUIS_CONFIG", "kluis.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @model_validator(mode="after")
    def _selected_sections_present(self) -> KluisSettings:
        if self.storage == "s3" and self.s3 is None:
            raise ValueError("storage = 's3' needs the s3 section (KLUIS_S3__ENDPOINT, ...)")
        if self.signer == "pkcs12" and self.pkcs12 is None:
            raise ValueError("signer = 'pkcs12' needs the pkcs12 section (KLUIS_PKCS12__PATH)")
        if self.signer == "pkcs11" and self.pkcs11 is None:
            raise ValueError("signer = 'pkcs11' needs the pkcs11 section (KLUIS_PKCS11__MODULE)")
        if self.signing_level != "B-B" and not self.tsa_url:
            raise ValueError(f"signing_level = {self.signing_level!r} needs tsa_url")
        lt = self.signing_level in ("B-LT", "B-LTA")
        if lt and self.signer != "dev" and not self.trust_roots:
            raise ValueError(f"signing_level = {self.signing_level!r} needs trust_roots")
        return self

    @property
    def development(self) -> bool:
        return self.mode == "development"

    def redacted(self) -> dict[str, object]:
        """The effective configuration with secrets masked, for ``kluis config``."""
        return self.model_dump(mode="json")
