"""KluisSettings: the one configuration model.

Sources, strongest first: constructor arguments > ``KLUIS_*`` environment variables
(nested with ``__``) > ``kluis.toml`` in the working directory (or ``KLUIS_CONFIG``) >
defaults. Unknown keys are errors, so a typo fails at start-up instead of being ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
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
    leeway_seconds: int = 30
    """Clock skew allowed on ``exp`` and ``nbf``."""


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
    storage: Literal["fs"] = "fs"
    """Storage backend; ``s3`` comes with the storage issue."""
    index: Literal["tantivy"] = "tantivy"
    """Index backend; ``opensearch`` comes with the search issue."""
    signer: Literal["dev"] = "dev"
    """Signing key source; PKCS#12 and PKCS#11 come with the signing issue."""
    selection_list: Path = DEFAULT_SELECTION_LIST
    """The selectielijst (TOML) that defines document types and their retention."""
    max_pdf_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    owner_key_secret: SecretStr | None = None
    """HMAC secret for owner keys in the index; generated under data_dir when unset."""
    host: str = "127.0.0.1"
    port: int = 8000
    auth: AuthSettings = AuthSettings()

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

    @property
    def development(self) -> bool:
        return self.mode == "development"

    def redacted(self) -> dict[str, object]:
        """The effective configuration with secrets masked, for ``kluis config``."""
        return self.model_dump(mode="json")
