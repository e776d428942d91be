"""Builds the backends from settings: the only place that chooses implementations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.store import AipStore
from ingest.idempotency import ClaimLedger
from ingest.pipeline import IngestLimits, Ingestor
from kluis.auth import TokenVerifier
from kluis.local_secrets import ensure_random_secret
from kluis.settings import KluisSettings
from retention.selection_list import SelectionList, load_selection_list
from search.projection import OwnerKeyer
from search.tantivy_index import TantivyIndex
from signing.devpki import ensure_dev_pki
from signing.pades import PadesSigner
from signing.policy import SigningPolicy


@dataclass
class Services:
    """Every long-lived backend of one process. Close it when done."""

    settings: KluisSettings
    storage: Storage
    store: AipStore
    ledger: ClaimLedger
    index: TantivyIndex
    keyer: OwnerKeyer
    signer: PadesSigner
    trust_roots: tuple[bytes, ...]
    selection: SelectionList
    ingestor: Ingestor

    def close(self) -> None:
        self.index.close()
        self.signer.close()
        self.storage.close()


def build_storage(settings: KluisSettings) -> Storage:
    return FsStorage(settings.data_dir / "storage")


def build_index(settings: KluisSettings) -> TantivyIndex:
    return TantivyIndex(settings.data_dir / "index")


def build_keyer(settings: KluisSettings) -> OwnerKeyer:
    if settings.owner_key_secret is not None:
        return OwnerKeyer(settings.owner_key_secret.get_secret_value().encode())
    return OwnerKeyer(ensure_random_secret(settings.data_dir / "secrets" / "owner-key"))


def dev_pki_dir(data_dir: Path) -> Path:
    return data_dir / "dev-pki"


def build_services(settings: KluisSettings) -> Services:
    """Open every backend named by the settings (embedded defaults under data_dir)."""
    selection = load_selection_list(settings.selection_list)
    pki = ensure_dev_pki(dev_pki_dir(settings.data_dir))
    signer = PadesSigner(SigningPolicy(), pki.key_source())
    storage = build_storage(settings)
    store = AipStore(storage)
    ledger = ClaimLedger(storage)
    index = build_index(settings)
    keyer = build_keyer(settings)
    ingestor = Ingestor(
        signer=signer,
        store=store,
        ledger=ledger,
        index=index,
        keyer=keyer,
        known_types=frozenset(selection.rules),
        retention=selection.retention_end,
        limits=IngestLimits(max_pdf_bytes=settings.max_pdf_bytes),
    )
    return Services(
        settings=settings,
        storage=storage,
        store=store,
        ledger=ledger,
        index=index,
        keyer=keyer,
        signer=signer,
        trust_roots=pki.trust_roots(),
        selection=selection,
        ingestor=ingestor,
    )


def build_verifier(settings: KluisSettings) -> TokenVerifier:
    return TokenVerifier.from_sources(
        jwks_file=settings.auth.jwks_file,
        dev_data_dir=settings.data_dir if settings.development else None,
        issuer=settings.auth.issuer,
        audience=settings.auth.audience,
        leeway=settings.auth.leeway_seconds,
    )
