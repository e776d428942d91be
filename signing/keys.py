"""Key sources: where the sealing key and its certificate chain come from.

:class:`KeySource` is the port; :class:`Pkcs12KeySource` reads a PKCS#12 file (embedded
mode, dev PKI). A PKCS#11 (HSM) source is planned and fits the same protocol: its
``open_signer`` opens a session and yields pyHanko's ``PKCS11Signer``.

Invariants: the private key is parsed once per ``open_signer`` and the yielded signer is
reused for many signatures; the key is not kept after the context exits. Only
:class:`signing.errors.KeySourceError` escapes, with the cause attached.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from signing._cached_signer import CachedKeySigner, SupportedPrivateKey
from signing.errors import KeySourceError

__all__ = ["KeySource", "Pkcs12KeySource"]


class KeySource(Protocol):
    """A sealing key plus its certificate chain.

    ``open_signer`` yields a ``pyhanko.sign.signers.Signer`` (typed ``Any`` because pyHanko
    ships no type information). The signer is stateless between signatures and may be used
    from several threads while the context is open.

    Raises:
        KeySourceError: from both methods when the key or certificates cannot be loaded.
    """

    name: str
    """Human-readable identification for logs and errors, e.g. ``pkcs12:/path/signer.p12``."""

    def open_signer(self) -> AbstractContextManager[Any]: ...

    def certificate_chain(self) -> tuple[bytes, ...]:
        """DER certificates: the signer's first, then intermediates up to the root."""
        ...


@dataclass(frozen=True)
class _KeyMaterial:
    key: SupportedPrivateKey
    chain: tuple[x509.Certificate, ...]  # signer first


class Pkcs12KeySource:
    """A key and chain in a PKCS#12 (.p12/.pfx) file.

    The file is read on every ``open_signer`` (so a replaced file is picked up by the next
    signer); the public certificate chain is cached after the first load.
    """

    def __init__(self, path: Path, passphrase: bytes | None) -> None:
        self.path = path
        self.name = f"pkcs12:{path}"
        self._passphrase = passphrase
        self._chain: tuple[bytes, ...] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Pkcs12KeySource(path={str(self.path)!r})"  # never the passphrase

    @contextmanager
    def open_signer(self) -> Iterator[Any]:
        """Yield a signer holding the parsed key.

        Raises:
            KeySourceError: unreadable file, wrong passphrase, missing key or certificate,
                unsupported key type, or a certificate that does not match the key.
        """
        material = self._load()
        self._chain = _der_chain(material.chain)  # same value for every load; no lock needed
        signer = CachedKeySigner(
            material.key,
            _to_asn1(material.chain[0]),
            [_to_asn1(cert) for cert in material.chain[1:]],
        )
        try:
            yield signer
        finally:
            del signer  # drop our reference to the key as soon as the caller is done

    def certificate_chain(self) -> tuple[bytes, ...]:
        """DER chain, signer first.

        Raises:
            KeySourceError: as for :meth:`open_signer`.
        """
        with self._lock:
            if self._chain is None:
                self._chain = _der_chain(self._load().chain)
            return self._chain

    def _load(self) -> _KeyMaterial:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise KeySourceError(self.name, f"cannot read file: {exc.strerror}") from exc
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, self._passphrase)
        except (ValueError, TypeError) as exc:
            raise KeySourceError(
                self.name, "cannot decrypt or parse the PKCS#12 data (wrong passphrase?)"
            ) from exc
        if key is None or cert is None:
            raise KeySourceError(self.name, "the PKCS#12 file lacks a private key or certificate")
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeySourceError(self.name, f"unsupported key type {type(key).__name__}")
        if _public_der(key.public_key()) != _public_der(cert.public_key()):
            raise KeySourceError(self.name, "the certificate does not match the private key")
        return _KeyMaterial(key=key, chain=(cert, *_order_chain(cert, extra)))


def _order_chain(
    leaf: x509.Certificate, others: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """Issuer order from ``leaf`` upwards; certificates off the path are appended after it.

    PKCS#12 files do not define the order of their extra certificates.
    """
    remaining = [cert for cert in others if cert != leaf]
    ordered: list[x509.Certificate] = []
    current = leaf
    while True:
        issuer = next((c for c in remaining if c.subject == current.issuer and c != current), None)
        if issuer is None:
            break
        ordered.append(issuer)
        remaining.remove(issuer)
        if issuer.subject == issuer.issuer:  # self-signed root ends the path
            break
        current = issuer
    return ordered + remaining


def _der_chain(chain: Sequence[x509.Certificate]) -> tuple[bytes, ...]:
    return tuple(cert.public_bytes(serialization.Encoding.DER) for cert in chain)


def _to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _public_der(public_key: object) -> bytes:
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return b""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
