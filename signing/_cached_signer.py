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

from collections.abc import Sequence

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pyhanko.sign.general import SigningError as PyhankoSigningError
from pyhanko.sign.signers import Signer
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

__all__ = ["CachedKeySigner", "SupportedPrivateKey"]

SupportedPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CachedKeySigner(Signer):
    """Signs with an in-memory key object; the dry run costs no private-key operation."""

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
