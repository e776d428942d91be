"""Development PKI for embedded mode: a local root CA and one sealing certificate.

NOT FOR PRODUCTION. The files let a developer or a test run sign and validate without an
HSM or a real CA. Layout of ``directory`` (created by :func:`ensure_dev_pki`)::

    ca.pem              root certificate "Kluis Development CA - NOT FOR PRODUCTION"
    signer.p12          sealing key + certificate + root, encrypted with the passphrase
    signer.passphrase   random passphrase (mode 0600)
    README.txt          says all of the above, in words

The root key is discarded after issuing the sealing certificate: nothing else can ever be
issued under this root. Certificates carry no CRL distribution point and no AIA, because
poppler/NSS reports "Unknown issue" for certificates whose revocation sources it cannot
reach (REPORT §3a).

Concurrency invariant: the PKI is built in a private temporary directory next to
``directory`` and moved into place with one ``rename``; the directory therefore either does
not exist or is complete. A process that loses the race discards its own build and uses the
winner's files.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from signing.errors import KeySourceError
from signing.keys import Pkcs12KeySource

__all__ = ["CA_COMMON_NAME", "SIGNER_COMMON_NAME", "DevPki", "ensure_dev_pki"]

CA_COMMON_NAME = "Kluis Development CA - NOT FOR PRODUCTION"
SIGNER_COMMON_NAME = "Kluis development seal"
_ORGANISATION = "Kluis development"

_CA_FILE = "ca.pem"
_P12_FILE = "signer.p12"
_PASSPHRASE_FILE = "signer.passphrase"
_README_FILE = "README.txt"

_KEY_BITS = 3072  # BSI TR-02102 asks for >= 3000-bit RSA for new keys
_CA_LIFETIME = timedelta(days=20 * 365)
_SIGNER_LIFETIME = timedelta(days=5 * 365)
_BACKDATE = timedelta(minutes=5)  # tolerate small clock differences between hosts
# RFC 9336 id-kp-documentSigning. emailProtection is added because NSS (pdfsig) verifies
# PDF signers for the "email signer" usage and rejects an EKU extension without it.
_EKU_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")

_README = f"""\
KLUIS DEVELOPMENT PKI - NOT FOR PRODUCTION
==========================================

These files were generated automatically by Kluis (signing/devpki.py) for development
and tests in embedded mode. Documents sealed with this key carry NO legal value:

  - the root certificate "{CA_COMMON_NAME}"
    is self-signed, generated on this machine and trusted by nobody else;
  - the private key in {_P12_FILE} and its passphrase in {_PASSPHRASE_FILE}
    sit side by side on disk.

Never configure this PKI in production; use an HSM-backed key with a certificate from a
qualified trust service provider. Delete this directory to generate a fresh PKI.

  {_CA_FILE:<19} root certificate (PEM); import it as a trust anchor to validate
  {_P12_FILE:<19} sealing key + certificate + root (PKCS#12, encrypted)
  {_PASSPHRASE_FILE:<19} passphrase of {_P12_FILE}
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DevPki:
    """Paths and secret of a generated development PKI."""

    directory: Path
    ca_cert_pem: Path
    signer_p12: Path
    passphrase: bytes = field(repr=False)

    def key_source(self) -> Pkcs12KeySource:
        """The sealing key as a :class:`~signing.keys.KeySource`."""
        return Pkcs12KeySource(self.signer_p12, self.passphrase)

    def trust_roots(self) -> tuple[bytes, ...]:
        """DER of the development root, for :func:`signing.validation.validate`.

        Raises:
            KeySourceError: if ``ca.pem`` cannot be read or parsed.
        """
        try:
            cert = x509.load_pem_x509_certificate(self.ca_cert_pem.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeySourceError(str(self.ca_cert_pem), f"cannot load root: {exc}") from exc
        return (cert.public_bytes(serialization.Encoding.DER),)


def ensure_dev_pki(directory: Path, *, clock: Callable[[], datetime] = _utc_now) -> DevPki:
    """Return the dev PKI in ``directory``, generating it first if it does not exist.

    Safe to call from several processes at once. ``clock`` sets the validity start of
    newly generated certificates (it must return an aware datetime).

    Raises:
        KeySourceError: if ``directory`` exists but is not a complete dev PKI, or if the
            files cannot be written or read.
    """
    if not _is_complete(directory):
        _generate(directory, clock)
    try:
        passphrase = (directory / _PASSPHRASE_FILE).read_bytes().strip()
    except OSError as exc:
        raise KeySourceError(str(directory), f"cannot read passphrase: {exc.strerror}") from exc
    return DevPki(
        directory=directory,
        ca_cert_pem=directory / _CA_FILE,
        signer_p12=directory / _P12_FILE,
        passphrase=passphrase,
    )


def _is_complete(directory: Path) -> bool:
    if not directory.exists():
        return False
    missing = [n for n in (_CA_FILE, _P12_FILE, _PASSPHRASE_FILE) if not (directory / n).is_file()]
    if missing and any(directory.iterdir()):
        raise KeySourceError(
            str(directory), f"exists but is not a complete dev PKI (missing {', '.join(missing)})"
        )
    return not missing  # an empty directory is replaced by the rename below


def _generate(directory: Path, clock: Callable[[], datetime]) -> None:
    now = clock()
    if now.tzinfo is None:
        raise ValueError("clock must return an aware datetime")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as exc:
        raise KeySourceError(str(directory), f"cannot create: {exc.strerror}") from exc
    try:
        _write_pki(staging, now)
        try:
            os.rename(staging, directory)  # atomic; fails if another process won the race
        except OSError:
            if not _is_complete(directory):
                raise
        else:
            _fsync_dir(directory.parent)
    except OSError as exc:
        raise KeySourceError(str(directory), f"cannot write dev PKI: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_pki(target: Path, now: datetime) -> None:
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    ca_name = _name(CA_COMMON_NAME)
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    signer_cert = (
        _builder(_name(SIGNER_COMMON_NAME), ca_name, signer_key.public_key(), now, _SIGNER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([_EKU_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    passphrase = secrets.token_urlsafe(32).encode("ascii")
    p12 = pkcs12.serialize_key_and_certificates(
        name=SIGNER_COMMON_NAME.encode(),
        key=signer_key,
        cert=signer_cert,
        cas=[ca_cert],
        encryption_algorithm=serialization.BestAvailableEncryption(passphrase),
    )
    _write(target / _PASSPHRASE_FILE, passphrase + b"\n", 0o600)
    _write(target / _P12_FILE, p12, 0o600)
    _write(target / _CA_FILE, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(target / _README_FILE, _README.encode(), 0o644)
    os.chmod(target, 0o700)  # mkdtemp already does this; keep it explicit
    _fsync_dir(target)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "BE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: rsa.RSAPublicKey,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    start = now.astimezone(UTC).replace(microsecond=0) - _BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + lifetime)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=not cert_sign,  # a.k.a. nonRepudiation
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
