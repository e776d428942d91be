"""A pyHanko ``Signer`` around a private key object that was parsed once.

Why not ``pyhanko.sign.signers.SimpleSigner``: in pyHanko 0.38 it re-parses and re-validates
the private key from DER on every signature (about 125 ms for RSA-3072 with OpenSSL 3) and
it answers pyHanko's size-estimation dry run with a real private-key operation. See
``/work/shared/research/signing/REPORT.md`` §5.3: fixing both takes a B-B signature from
~70-190 ms to ~10-20 ms.

Invariants: the key object is only read, never mutated, so one instance may serve many
threads at once (cryptography key objects are thread-safe for ``sign``). Only RSA PKCS#1 v1.5
and ECDSA are supported; anything else is refused when the signer is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pyhanko.sign.attributes import CMSAttributeProvider, SigningCertificateV2Provider
from pyhanko.sign.general import SigningError as PyhankoSigningError
from pyhanko.sign.general import as_signing_certificate_v2
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

__all__ = ["CachedKeySigner", "StaticCmsParts", "SupportedPrivateKey", "pkcs11_signer"]

SupportedPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class StaticCmsParts:
    """Mixin for a pyHanko ``Signer``: encode the static CMS parts once.

    The certificate set and the signing-certificate-v2 attribute are the same in every
    container a signer makes; pyHanko rebuilds them per document and asn1crypto re-serialises
    them recursively, which was ~75 % of a B-B signature (REPORT §5.3). Here they are encoded
    on first use and reused as pre-parsed DER (asn1crypto dumps an unmodified parsed value
    as its original bytes). ``_package_signature`` mirrors pyHanko 0.38's, minus attribute
    certificates (Kluis uses none). Thread-safe: a race only encodes the same bytes twice.
    """

    signing_cert: Any
    cert_registry: Any
    _static_der: tuple[bytes, bytes] | None = None

    def _static_parts(self) -> tuple[bytes, bytes]:
        if self._static_der is None:
            # Deduplicated by encoding: PKCS11Signer keeps the signer certificate in its
            # registry too, and asn1crypto values do not compare equal by content in a set.
            ders = {c.dump(): c for c in self.cert_registry}
            ders[self.signing_cert.dump()] = self.signing_cert
            choices = [cms.CertificateChoices(name="certificate", value=c) for c in ders.values()]
            self._static_der = (
                cms.CertificateSet(choices).dump(),
                as_signing_certificate_v2(self.signing_cert).dump(),
            )
        return self._static_der

    def _signed_attr_providers(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for provider in super()._signed_attr_providers(*args, **kwargs):  # type: ignore[misc]
            if isinstance(provider, SigningCertificateV2Provider):
                yield _StaticAttribute("signing_certificate_v2", self._static_parts()[1])
            else:
                yield provider

    def _package_signature(
        self,
        *,
        digest_algorithm: str,
        cms_version: Any,
        signed_attrs: Any,
        signature: bytes,
        unsigned_attrs: Any,
        encap_content_info: Any,
    ) -> Any:
        sig_info = self.signer_info(  # type: ignore[attr-defined]
            digest_algorithm, signed_attrs, signature
        )
        if unsigned_attrs is not None:
            sig_info["unsigned_attrs"] = unsigned_attrs
        signed_data = {
            "version": cms_version,
            "digest_algorithms": cms.DigestAlgorithms((sig_info["digest_algorithm"],)),
            "encap_content_info": encap_content_info or {"content_type": "data"},
            "certificates": cms.CertificateSet.load(self._static_parts()[0]),
            "signer_infos": [sig_info],
        }
        return cms.ContentInfo(
            {"content_type": cms.ContentType("signed_data"), "content": cms.SignedData(signed_data)}
        )


class CachedKeySigner(StaticCmsParts, Signer):
    """Signs with an in-memory key object; the dry run costs no private-key operation, and
    the static CMS parts are encoded once (:class:`StaticCmsParts`)."""

    def __init__(
        self,
        private_key: SupportedPrivateKey,
        signing_cert: asn1_x509.Certificate,
        other_certs: Sequence[asn1_x509.Certificate],
    ) -> None:
        super().__init__(signing_cert=signing_cert, embed_roots=True)
        for cert in other_certs:  # the default registry is an empty SimpleCertificateStore
            self.cert_registry.register(cert)
        self._key = private_key

    async def async_sign_raw(
        self, data: bytes, digest_algorithm: str, dry_run: bool = False
    ) -> bytes:
        if dry_run and isinstance(self._key, rsa.RSAPrivateKey):
            # An RSA signature is exactly as long as the modulus; pyHanko only needs the
            # size of the container, so zeros do.
            return bytes((self._key.key_size + 7) // 8)
        return self.sign_raw(data, digest_algorithm)

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        hash_algo = get_pyca_cryptography_hash(digest_algorithm)
        if mechanism == "rsassa_pkcs1v15" and isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, PKCS1v15(), hash_algo)
        if mechanism == "ecdsa" and isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(hash_algo))
        raise PyhankoSigningError(f"signature mechanism {mechanism} is not supported")


class _StaticAttribute(CMSAttributeProvider):
    """The signing-certificate-v2 attribute value, parsed from cached DER each time (a fresh
    object per container, so no two containers share mutable asn1crypto state)."""

    def __init__(self, attribute_type: str, der: bytes) -> None:
        self.attribute_type = attribute_type
        self._der = der

    async def build_attr_value(self, dry_run: bool = False) -> Any:
        return tsp.SigningCertificateV2.load(self._der)


def pkcs11_signer(**kwargs: Any) -> Any:
    """pyHanko's ``PKCS11Signer`` with :class:`StaticCmsParts` (imported lazily: it needs
    python-pkcs11)."""
    from pyhanko.sign.pkcs11 import PKCS11Signer

    class _Pkcs11Signer(StaticCmsParts, PKCS11Signer):
        pass

    return _Pkcs11Signer(**kwargs)
