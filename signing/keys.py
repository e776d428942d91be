"""Key sources: where the sealing key and its certificate chain come from.

:class:`KeySource` is the port; :class:`Pkcs12KeySource` reads a PKCS#12 file (embedded
mode, dev PKI); :class:`Pkcs11KeySource` uses a key in an HSM through its PKCS#11 module
(tested against SoftHSM2): ``open_signer`` opens and logs in a session and yields pyHanko's
``PKCS11Signer``. Open one signer per process, after fork (REPORT §4.3).

Invariants: the private key is parsed once per ``open_signer`` and the yielded signer is
reused for many signatures; the key is not kept after the context exits. Only
:class:`signing.errors.KeySourceError` escapes, with the cause attached.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from signing._cached_signer import CachedKeySigner, SupportedPrivateKey, pkcs11_signer
from signing.errors import KeySourceError

__all__ = ["KeySource", "Pkcs11KeySource", "Pkcs12KeySource", "load_root", "read_certificates"]


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


def read_certificates(path: Path) -> tuple[bytes, ...]:
    """DER of every certificate in a PEM bundle or a single DER file.

    Raises:
        KeySourceError: unreadable file or no certificate in it.
    """
    try:
        data = path.read_bytes()
        certs = (
            x509.load_pem_x509_certificates(data)
            if b"-----BEGIN" in data
            else [x509.load_der_x509_certificate(data)]
        )
    except (OSError, ValueError) as exc:
        raise KeySourceError(str(path), f"cannot read certificates: {exc}") from exc
    return _der_chain(certs)


def load_root(index: int, der: bytes) -> asn1_x509.Certificate:
    """Parse trust root number ``index`` (DER) strictly.

    Raises:
        ValueError: ``der`` is not a DER X.509 certificate.
    """
    try:
        x509.load_der_x509_certificate(der)  # strict parse first; asn1crypto is lazy
        return asn1_x509.Certificate.load(der)
    except ValueError as exc:
        raise ValueError(f"trust root #{index} is not a DER X.509 certificate") from exc


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


_P11_OPEN_ATTEMPTS: Final = 6
_P11_BACKOFF_S: Final = 0.05  # doubled per attempt, with jitter: ~3 s in all


class Pkcs11KeySource:
    """A key in a PKCS#11 token (HSM), found by token label and key label.

    The signer certificate is the token's certificate object ``cert_label`` (default: the
    key label); the chain is built from the other certificates on the token, following
    issuer names. ``extra_chain`` (DER) adds certificates that are not on the token.
    Only that path is embedded (pyHanko's default would pull every certificate on the token,
    REPORT §4.1). EC keys use the raw ECDSA mechanism (SoftHSM2 lacks CKM_ECDSA_SHA256).

    Opening a session is retried with a short backoff: SoftHSM2 sporadically misses the
    token when several processes open it at once (REPORT §4.3).
    """

    def __init__(
        self,
        module: Path | str,
        token_label: str,
        key_label: str,
        pin: str | None,
        *,
        cert_label: str | None = None,
        extra_chain: Sequence[bytes] = (),
    ) -> None:
        self.module = str(module)
        self.token_label = token_label
        self.key_label = key_label
        self.cert_label = cert_label or key_label
        self.name = f"pkcs11:{token_label}/{key_label}"
        self._pin = pin
        self._extra = tuple(extra_chain)
        self._chain: tuple[bytes, ...] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Pkcs11KeySource(module={self.module!r}, name={self.name!r})"  # never the PIN

    @contextmanager
    def open_signer(self) -> Iterator[Any]:
        """Yield a ``PKCS11Signer`` on a logged-in session; the session closes on exit.

        Raises:
            KeySourceError: module, token, key or certificate missing, wrong PIN.
        """
        session = self._open_session()
        try:
            chain = self._read_chain(session)
            self._chain = _der_chain(chain)
            is_ec = isinstance(chain[0].public_key(), ec.EllipticCurvePublicKey)
            try:
                signer = pkcs11_signer(
                    pkcs11_session=session,
                    key_label=self.key_label,
                    signing_cert=_to_asn1(chain[0]),
                    ca_chain=[_to_asn1(c) for c in chain[1:]],
                    other_certs_to_pull=(),
                    use_raw_mechanism=is_ec,
                )
            except Exception as exc:
                raise KeySourceError(self.name, f"{type(exc).__name__}: {exc}") from exc
            yield signer
        finally:
            with contextlib.suppress(Exception):
                session.close()

    def certificate_chain(self) -> tuple[bytes, ...]:
        """DER chain, signer first.

        Raises:
            KeySourceError: as for :meth:`open_signer`.
        """
        with self._lock:
            if self._chain is None:
                session = self._open_session()
                try:
                    self._chain = _der_chain(self._read_chain(session))
                finally:
                    with contextlib.suppress(Exception):
                        session.close()
            return self._chain

    def _open_session(self) -> Any:
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.sign.pkcs11 import open_pkcs11_session

        if not Path(self.module).is_file():
            raise KeySourceError(self.name, f"PKCS#11 module {self.module} does not exist")
        last: Exception | None = None
        for attempt in range(_P11_OPEN_ATTEMPTS):
            try:
                return open_pkcs11_session(
                    self.module,
                    token_criteria=TokenCriteria(label=self.token_label),
                    user_pin=self._pin,
                )
            except Exception as exc:  # python-pkcs11 and pyHanko raise many types
                last = exc
                if "PinIncorrect" in type(exc).__name__ or "PinIncorrect" in repr(exc):
                    break  # retrying a wrong PIN only locks the token
                time.sleep(_P11_BACKOFF_S * (2**attempt) * (0.5 + random.random()))
                self._reinitialize()  # the module may have read a half-written token store
        raise KeySourceError(self.name, f"cannot open a session: {type(last).__name__}: {last}")

    def _reinitialize(self) -> None:
        try:
            import pkcs11

            pkcs11.lib(self.module).reinitialize()
        except Exception:  # best effort; the next attempt reports the real problem
            pass

    def _read_chain(self, session: Any) -> tuple[x509.Certificate, ...]:
        from pkcs11 import Attribute, ObjectClass

        try:
            leaf: x509.Certificate | None = None
            others: list[x509.Certificate] = []
            for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
                cert = x509.load_der_x509_certificate(bytes(obj[Attribute.VALUE]))
                if obj[Attribute.LABEL] == self.cert_label and leaf is None:
                    leaf = cert
                else:
                    others.append(cert)
        except Exception as exc:
            raise KeySourceError(self.name, f"cannot read certificates: {exc!r}") from exc
        if leaf is None:
            raise KeySourceError(self.name, f"no certificate labelled {self.cert_label!r}")
        others += [x509.load_der_x509_certificate(der) for der in self._extra]
        path = _order_chain(leaf, others)
        on_path = [c for c in path if _issued_path(leaf, path, c)]
        return (leaf, *on_path)


def _issued_path(
    leaf: x509.Certificate, path: Sequence[x509.Certificate], cert: x509.Certificate
) -> bool:
    """Whether ``cert`` is on the issuer path from ``leaf`` (``_order_chain`` appends the
    certificates that are not, e.g. other signers' certificates on the same token)."""
    current = leaf
    for candidate in path:
        if candidate.subject != current.issuer:
            return False
        if candidate == cert:
            return True
        current = candidate
    return False
