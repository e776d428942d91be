"""Builds the backends from settings: the only place that chooses implementations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path

from archive.events import EventLog
from archive.storage.base import Storage
from archive.storage.fs import FsStorage
from archive.storage.s3 import S3Storage
from archive.store import AipStore
from ingest.idempotency import ClaimLedger
from ingest.pipeline import IngestLimits, Ingestor
from kluis.auth import TokenVerifier
from kluis.local_secrets import ensure_random_secret
from kluis.settings import KluisSettings
from retention.disposal import Disposal
from retention.holds import HoldRegistry
from retention.projection import IndexUpdater, RetentionProjection
from retention.proposals import ProposalStore
from retention.records import RetentionRecords
from retention.selection_list import SelectionList, load_selection_list
from search.opensearch import OpenSearchIndex, connect
from search.projection import OwnerKeyer
from search.tantivy_index import TantivyIndex
from signing.devpki import ensure_dev_pki
from signing.keys import KeySource, Pkcs11KeySource, Pkcs12KeySource, read_certificates
from signing.pades import PadesSigner
from signing.policy import SigningPolicy


@dataclass
class Services:
    """Every long-lived backend of one process. Close it when done."""

    settings: KluisSettings
    storage: Storage
    store: AipStore
    ledger: ClaimLedger
    index: TantivyIndex | OpenSearchIndex
    keyer: OwnerKeyer
    signer: PadesSigner
    trust_roots: tuple[bytes, ...]
    selection: SelectionList
    ingestor: Ingestor

    @cached_property
    def projection(self) -> RetentionProjection:
        """What reindex, reconcile and index updates project: packages plus their holds and
        recorded retention ends (use ``.snapshot()`` for a whole run)."""
        return RetentionProjection(self.store, self.storage)

    @cached_property
    def records(self) -> RetentionRecords:
        """Retention state (storage only), recompute and event trigger dates."""
        return RetentionRecords(
            self.storage,
            self.store,
            EventLog(self.storage),
            self.selection,
            index=IndexUpdater(self.projection, self.index, self.keyer),
        )

    @cached_property
    def holds(self) -> HoldRegistry:
        """Legal holds."""
        return HoldRegistry(
            self.storage,
            self.store,
            EventLog(self.storage),
            index=self.index,
            index_updater=IndexUpdater(self.projection, self.index, self.keyer),
        )

    @cached_property
    def disposal(self) -> Disposal:
        """Disposal proposals, four-eyes decisions, execution, destruction certificates."""
        return Disposal(
            store=self.store,
            proposals=ProposalStore(self.storage),
            index=self.index,
            facts=self.records,
            keys=build_key_source(self.settings)[0],
            tsa_url=self.settings.tsa_url,
            trust_roots=self.trust_roots,
            clock=lambda: datetime.now(UTC),
            new_id=lambda: str(uuid.uuid4()),
        )

    def close(self) -> None:
        self.index.close()
        self.signer.close()
        self.storage.close()


def build_storage(settings: KluisSettings) -> Storage:
    if settings.storage == "s3" and settings.s3 is not None:
        s3 = settings.s3
        return S3Storage(
            s3.endpoint,
            s3.access_key,
            s3.secret_key.get_secret_value(),
            s3.bucket,
            region=s3.region,
            secure=s3.secure,
            guard_bucket=s3.guard_bucket,
            guard_timeout=timedelta(seconds=s3.guard_timeout_seconds),
        )
    return FsStorage(settings.data_dir / "storage")


def build_index(settings: KluisSettings) -> TantivyIndex | OpenSearchIndex:
    if settings.index == "opensearch":
        cfg = settings.opensearch
        client = connect(
            cfg.url,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            verify_certs=cfg.verify_certs,
        )
        return OpenSearchIndex(client, cfg.alias, replicas=cfg.replicas)
    return TantivyIndex(settings.data_dir / "index")


def build_keyer(settings: KluisSettings) -> OwnerKeyer:
    if settings.owner_key_secret is not None:
        return OwnerKeyer(settings.owner_key_secret.get_secret_value().encode())
    return OwnerKeyer(ensure_random_secret(settings.data_dir / "secrets" / "owner-key"))


def dev_pki_dir(data_dir: Path) -> Path:
    return data_dir / "dev-pki"


def build_key_source(settings: KluisSettings) -> tuple[KeySource, tuple[bytes, ...]]:
    """The sealing key source named by the settings, and the validation trust roots."""
    roots: tuple[bytes, ...] = ()
    for path in settings.trust_roots:
        roots += read_certificates(path)
    if settings.signer == "pkcs12" and settings.pkcs12 is not None:
        secret = settings.pkcs12.passphrase
        return Pkcs12KeySource(
            settings.pkcs12.path, secret.get_secret_value().encode() if secret else None
        ), roots
    if settings.signer == "pkcs11" and settings.pkcs11 is not None:
        p11 = settings.pkcs11
        return Pkcs11KeySource(
            p11.module,
            p11.token_label,
            p11.key_label,
            p11.pin.get_secret_value(),
            cert_label=p11.cert_label,
        ), roots
    pki = ensure_dev_pki(dev_pki_dir(settings.data_dir))
    return pki.key_source(), pki.trust_roots() + roots


def build_services(settings: KluisSettings) -> Services:
    """Open every backend named by the settings (embedded defaults under data_dir)."""
    selection = load_selection_list(settings.selection_list)
    keys, trust_roots = build_key_source(settings)
    signer = PadesSigner(
        SigningPolicy(level=settings.signing_level, tsa_url=settings.tsa_url),
        keys,
        trust_roots=trust_roots,
    )
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
        retention=selection.terms,
        limits=IngestLimits(max_pdf_bytes=settings.max_pdf_bytes),
        source=RetentionProjection(store, storage),
    )
    return Services(
        settings=settings,
        storage=storage,
        store=store,
        ledger=ledger,
        index=index,
        keyer=keyer,
        signer=signer,
        trust_roots=trust_roots,
        selection=selection,
        ingestor=ingestor,
    )


def build_verifier(settings: KluisSettings) -> TokenVerifier:
    return TokenVerifier.from_sources(
        jwks_file=settings.auth.jwks_file,
        jwks_url=settings.auth.jwks_url,
        jwks_ttl=settings.auth.jwks_cache_seconds,
        dev_data_dir=settings.data_dir if settings.development else None,
        issuer=settings.auth.issuer,
        audience=settings.auth.audience,
        leeway=settings.auth.leeway_seconds,
    )
