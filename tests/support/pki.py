"""A real test PKI for the signing tests: certomancer, served over loopback HTTP.

Root -> intermediate -> signers (RSA-2048, RSA-3072, ECDSA P-256); root -> TSA;
intermediate -> delegated OCSP responder. Signers carry a CRL distribution point and AIA
(OCSP + CA issuers). Serial numbers are unique across the PKI (REPORT §1: certomancer
numbers per issuer by default, which trips serial-only matchers).

The ``certomancer animate`` server (TSA, OCSP, CRLs, cert repository) runs as a child process
on a free 127.0.0.1 port. It ignores SIGTERM (REPORT §1), so it is started in its own process
group and stopped with SIGKILL, both from :meth:`CertomancerPki.stop` and at interpreter exit.

One PKI per test process (:func:`running_pki`): key generation and the server start-up take a
few seconds, so every test module shares it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ARCH = "kluis"
PIN = "1234"
SO_PIN = "5678"
TOKEN_LABEL = "kluis-test"
SIGNERS = ("signer-rsa2048", "signer-rsa3072", "signer-ec256")

_KEYS: dict[str, tuple[str, int]] = {
    "root": ("rsa", 2048),  # CA sizes do not matter for the tests; keep generation quick
    "interm": ("rsa", 2048),
    "interm-ocsp": ("rsa", 2048),
    "tsa": ("rsa", 2048),
    "signer-rsa2048": ("rsa", 2048),
    "signer-rsa3072": ("rsa", 3072),
    "signer-ec256": ("ec", 256),
}

_SIGNER = """
      {name}:
        issuer: interm
        serial: {serial}
        validity:
          valid-from: "2025-01-01T00:00:00+0000"
          valid-to: "2035-01-01T00:00:00+0000"
        extensions:
          - id: key_usage
            critical: true
            smart-value:
              schema: key-usage
              params: [digital_signature, non_repudiation]
          - id: crl_distribution_points
            smart-value:
              schema: crl-dist-url
              params: {{crl-repo-names: [interm]}}
          - id: authority_information_access
            smart-value:
              schema: aia-urls
              params:
                ocsp-responder-names: [interm]
                ca-issuer-links:
                  - {{repo: root, cert-labels: [interm], include-repo-authority: false}}
"""

_CONFIG = """external-url-prefix: "http://127.0.0.1:{port}"
keysets:
  {arch}:
    path-prefix: keys
    keys:
{keys}
pki-architectures:
  {arch}:
    keyset: {arch}
    entity-defaults:
      country-name: BE
      organization-name: Kluis Test PKI
    entities:
{entities}
    certs:
      root:
        serial: 0x1100
        subject: root
        issuer: root
        validity:
          valid-from: "2024-01-01T00:00:00+0000"
          valid-to: "2060-01-01T00:00:00+0000"
        extensions:
          - id: basic_constraints
            critical: true
            value: {{ca: true}}
          - id: key_usage
            critical: true
            smart-value: {{schema: key-usage, params: [digital_signature, key_cert_sign, crl_sign]}}
      interm:
        serial: 0x2100
        issuer: root
        validity:
          valid-from: "2024-01-01T00:00:00+0000"
          valid-to: "2050-01-01T00:00:00+0000"
        extensions:
          - id: basic_constraints
            critical: true
            value: {{ca: true, path-len-constraint: 0}}
          - id: key_usage
            critical: true
            smart-value: {{schema: key-usage, params: [digital_signature, key_cert_sign, crl_sign]}}
          - id: crl_distribution_points
            smart-value: {{schema: crl-dist-url, params: {{crl-repo-names: [root]}}}}
      interm-ocsp:
        serial: 0x3100
        issuer: interm
        validity:
          valid-from: "2024-01-01T00:00:00+0000"
          valid-to: "2050-01-01T00:00:00+0000"
        extensions:
          - id: key_usage
            critical: true
            smart-value: {{schema: key-usage, params: [digital_signature]}}
          - id: extended_key_usage
            critical: true
            value: [ocsp_signing]
          - id: ocsp_no_check
      tsa:
        serial: 0x4100
        issuer: root
        validity:
          valid-from: "2024-01-01T00:00:00+0000"
          valid-to: "2045-01-01T00:00:00+0000"
        extensions:
          - id: key_usage
            critical: true
            smart-value: {{schema: key-usage, params: [digital_signature]}}
          - id: extended_key_usage
            critical: true
            value: [time_stamping]
          - id: crl_distribution_points
            smart-value: {{schema: crl-dist-url, params: {{crl-repo-names: [root]}}}}
{signers}
    services:
      ocsp:
        interm:
          for-issuer: interm
          responder-cert: interm-ocsp
          signing-key: interm-ocsp
      crl-repo:
        root:
          for-issuer: root
          signing-key: root
          simulated-update-schedule: "P90D"
        interm:
          for-issuer: interm
          signing-key: interm
          simulated-update-schedule: "P7D"
      cert-repo:
        root:
          for-issuer: root
          publish-issued-certs: yes
      time-stamping:
        tsa:
          signing-key: tsa
          signing-cert: tsa
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class CertomancerPki:
    """Files and URLs of a running certomancer PKI."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    _softhsm: Path | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tsa_url(self) -> str:
        return f"{self.base_url}/{ARCH}/tsa/tsa"

    def cert_path(self, name: str) -> Path:
        return self.directory / "out" / f"{name}.cert.pem"

    def key_path(self, name: str) -> Path:
        return self.directory / "keys" / f"{name}.key.pem"

    def p12_path(self, name: str) -> Path:
        return self.directory / "out" / f"{name}.pfx"

    def cert_der(self, name: str) -> bytes:
        cert = x509.load_pem_x509_certificate(self.cert_path(name).read_bytes())
        return cert.public_bytes(serialization.Encoding.DER)

    @property
    def root_der(self) -> bytes:
        return self.cert_der("root")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # SIGTERM is ignored
            self.process.wait(timeout=10)
        self.process = None

    def softhsm_token(self) -> SoftHsmToken:
        """A SoftHSM2 token (own SOFTHSM2_CONF) holding every signer key and certificate,
        plus the intermediate and root certificates. Built once per PKI."""
        if self._softhsm is None:
            self._softhsm = self.directory / "softhsm"
            build_softhsm_token(self, self._softhsm)
        return SoftHsmToken(self._softhsm)


@dataclass(frozen=True)
class SoftHsmToken:
    directory: Path

    @property
    def conf(self) -> Path:
        return self.directory / "softhsm2.conf"


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def _tool(name: str) -> str:
    venv_tool = Path(sys.executable).parent / name
    return str(venv_tool) if venv_tool.exists() else name


def build_pki(directory: Path, port: int) -> CertomancerPki:
    keys = directory / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for name, (kind, size) in _KEYS.items():
        private = (
            rsa.generate_private_key(65537, size)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        (keys / f"{name}.key.pem").write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    entities = {
        "root": "Kluis Test Root CA",
        "interm": "Kluis Test Intermediate CA",
        "interm-ocsp": "Kluis Test OCSP Responder",
        "tsa": "Kluis Test TSA",
        "signer-rsa2048": "Kluis Test Seal RSA2048",
        "signer-rsa3072": "Kluis Test Seal RSA3072",
        "signer-ec256": "Kluis Test Seal P256",
    }
    config = _CONFIG.format(
        port=port,
        arch=ARCH,
        keys="\n".join(f"      {n}:\n        path: {n}.key.pem" for n in _KEYS),
        entities="\n".join(f"      {n}:\n        common-name: {cn}" for n, cn in entities.items()),
        signers="".join(_SIGNER.format(name=n, serial=0x5100 + i) for i, n in enumerate(SIGNERS)),
    )
    (directory / "certomancer.yml").write_text(config)
    subprocess.run(
        [
            _tool("certomancer"),
            "--config",
            str(directory / "certomancer.yml"),
            "mass-summon",
            "--flat",  # PKCS#12 files are written unencrypted
            ARCH,
            str(directory / "out"),
        ],
        check=True,
        capture_output=True,
    )
    return CertomancerPki(directory=directory, port=port)


def _die_with_parent() -> None:
    """Linux: SIGKILL the server when the test process dies, even by SIGKILL (no atexit)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start(pki: CertomancerPki) -> None:
    pki.process = subprocess.Popen(
        [
            _tool("certomancer"),
            "--config",
            str(pki.directory / "certomancer.yml"),
            "animate",
            "--port",
            str(pki.port),
            "--no-web-ui",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + 30
    url = f"{pki.base_url}/{ARCH}/crls/root/latest.crl"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if pki.process.poll() is not None or time.monotonic() > deadline:
                pki.stop()
                raise RuntimeError(f"certomancer did not come up on {url}") from None
            time.sleep(0.1)


def build_softhsm_token(pki: CertomancerPki, directory: Path) -> None:
    """Initialise a SoftHSM2 token and import every signer key + certificate.

    Keys: ``softhsm2-util --import`` (PKCS#8 PEM). Certificates: python-pkcs11. Raises
    (never skips) when SoftHSM2 is not installed: ``make test`` installs it.
    """
    import pkcs11
    from pkcs11 import Attribute, CertificateType, ObjectClass

    if not Path(SOFTHSM_MODULE).exists():
        raise RuntimeError(f"{SOFTHSM_MODULE} missing: apt-get install softhsm2 (make test)")
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    util = "softhsm2-util"
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
        env=env,
    )
    for index, name in enumerate(SIGNERS, start=1):
        subprocess.run(
            [
                util,
                "--import",
                str(pki.key_path(name)),
                "--token",
                TOKEN_LABEL,
                "--label",
                name,
                "--id",
                f"{index:02x}",
                "--pin",
                PIN,
            ],
            check=True,
            capture_output=True,
            env=env,
        )
    # python-pkcs11 reads SOFTHSM2_CONF when the module is loaded: do it in a child so the
    # test process can still load the module with whatever configuration it chooses.
    certs = [(name, pki.cert_der(name), index) for index, name in enumerate(SIGNERS, start=1)]
    certs += [("interm", pki.cert_der("interm"), 0x10), ("root", pki.cert_der("root"), 0x11)]
    script = (
        "import sys, pickle, pkcs11\n"
        "from cryptography import x509\n"
        "from pkcs11 import Attribute, CertificateType, ObjectClass\n"
        "lib = pkcs11.lib(sys.argv[1])\n"
        "tok = lib.get_token(token_label=sys.argv[2])\n"
        "with tok.open(rw=True, user_pin=sys.argv[3]) as s:\n"
        "    for label, der, ident in pickle.loads(sys.stdin.buffer.read()):\n"
        "        s.create_object({Attribute.CLASS: ObjectClass.CERTIFICATE,\n"
        "            Attribute.CERTIFICATE_TYPE: CertificateType.X_509, Attribute.TOKEN: True,\n"
        "            Attribute.LABEL: label, Attribute.ID: bytes([ident]), Attribute.VALUE: der,\n"
        "            Attribute.SUBJECT:\n"
        "                x509.load_der_x509_certificate(der).subject.public_bytes()})\n"
    )
    del pkcs11, Attribute, CertificateType, ObjectClass  # imported only to fail early
    import pickle

    subprocess.run(
        [sys.executable, "-c", script, SOFTHSM_MODULE, TOKEN_LABEL, PIN],
        input=pickle.dumps(certs),
        check=True,
        capture_output=True,
        env=env,
    )


_PKI: CertomancerPki | None = None


def running_pki() -> CertomancerPki:
    """The process-wide running test PKI (built and started on first use)."""
    global _PKI
    if _PKI is None:
        directory = Path(tempfile.mkdtemp(prefix="kluis-test-pki-"))
        pki = build_pki(directory, _free_port())
        start(pki)
        atexit.register(shutil.rmtree, directory, ignore_errors=True)  # runs after stop
        atexit.register(pki.stop)
        _PKI = pki
    return _PKI
