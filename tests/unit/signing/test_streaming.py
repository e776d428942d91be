"""Streaming signatures (bounded memory, never a half-written output) and the per-signer
network state above B-B (one HTTP session, revocation data reused while current)."""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from signing.devpki import DevPki
from signing.errors import SignatureFailedError, UnreadablePdfError
from signing.keys import Pkcs12KeySource
from signing.pades import PadesSigner
from signing.policy import SigningPolicy
from signing.validation import validate
from tests.support.pdfs import make_pdf, truncated_pdf, write_large_pdf
from tests.support.pki import CertomancerPki

MiB = 2**20


def _prefix_sha256(stream: io.BufferedIOBase | tempfile.SpooledTemporaryFile[bytes], n: int) -> str:
    stream.seek(0)
    digest = hashlib.sha256()
    while n > 0:
        chunk = stream.read(min(n, 4 * MiB))
        digest.update(chunk)
        n -= len(chunk)
    return digest.hexdigest()


@pytest.mark.slow
def test_large_file_is_streamed_in_bounded_memory(
    pades_signer: PadesSigner, signing_pki: DevPki, tmp_path: Path
) -> None:
    size = 160 * MiB
    source_path = tmp_path / "big.pdf"
    write_large_pdf(source_path, size)
    pades_signer.sign(make_pdf())  # warm-up: measures the CMS reservation
    with (
        source_path.open("rb") as source,
        tempfile.SpooledTemporaryFile(4 * MiB, dir=tmp_path) as output,
    ):
        tracemalloc.start()
        try:
            facts = pades_signer.sign_stream(source, output)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # The spool buffer plus pyHanko's 1 MiB copy/hash chunks; nothing proportional to
        # the file (the bytes API needs about 2x the file, the old code 3.5x).
        assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB for a {size // MiB} MiB file"
        in_size = source_path.stat().st_size
        assert output.seek(0, io.SEEK_END) > in_size
        assert _prefix_sha256(output, in_size) == _prefix_sha256(source, in_size)
        output.seek(0)
        signed = output.read()
    assert facts.level == "B-B"
    report = validate(signed, trust_roots=signing_pki.trust_roots())
    assert report.valid and report.signatures[0].coverage == "entire-file", report.to_dict()


def test_stream_and_bytes_signing_agree(pades_signer: PadesSigner, signing_pki: DevPki) -> None:
    original = make_pdf(["Stroom"])
    output = io.BytesIO()
    facts = pades_signer.sign_stream(io.BytesIO(original), output)
    from_bytes = pades_signer.sign(original)
    # Same clock, key and reservation: same layout (only the random trailer /ID differs).
    assert output.getvalue().startswith(original) and from_bytes.pdf.startswith(original)
    assert len(output.getvalue()) == len(from_bytes.pdf)
    assert (facts.level, facts.signed_at, facts.certificate_sha256) == (
        from_bytes.level,
        from_bytes.signed_at,
        from_bytes.certificate_sha256,
    )
    assert validate(output.getvalue(), trust_roots=signing_pki.trust_roots()).valid


def test_output_stream_must_be_empty_and_random_access(pades_signer: PadesSigner) -> None:
    with pytest.raises(ValueError, match="empty"):
        pades_signer.sign_stream(io.BytesIO(make_pdf()), io.BytesIO(b"already here"))

    class WriteOnly(io.RawIOBase):
        def writable(self) -> bool:
            return True

    with pytest.raises(ValueError, match="readable, writable and seekable"):
        pades_signer.sign_stream(io.BytesIO(make_pdf()), WriteOnly())  # type: ignore[arg-type]


def test_unreadable_input_writes_nothing(pades_signer: PadesSigner) -> None:
    output = io.BytesIO()
    with pytest.raises(UnreadablePdfError):
        pades_signer.sign_stream(io.BytesIO(truncated_pdf()), output)
    assert output.getvalue() == b""


def test_failure_after_writing_leaves_an_empty_output(signing_pki: DevPki, tmp_path: Path) -> None:
    # pyHanko writes the whole document before it asks the TSA; nothing listens on the port.
    policy = SigningPolicy(level="B-T", tsa_url="http://127.0.0.1:9/tsa")
    with (
        PadesSigner(policy, signing_pki.key_source()) as signer,
        (tmp_path / "out.pdf").open("w+b") as output,
    ):
        with pytest.raises(SignatureFailedError):
            signer.sign_stream(io.BytesIO(make_pdf(padding_bytes=MiB)), output)
        assert output.seek(0, io.SEEK_END) == 0


def test_b_lt_signer_reuses_revocation_data(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource
) -> None:
    policy = SigningPolicy(level="B-LT", tsa_url=cpki.tsa_url)
    with PadesSigner(policy, cpki_source, trust_roots=[cpki.root_der]) as signer:
        signed = [signer.sign(make_pdf(["Besluit", str(i)])).pdf for i in range(3)]
        assert signer.revinfo_contexts_built == 1  # one set of OCSP/CRL fetches for all
    for pdf in signed:
        report = validate(pdf, trust_roots=[cpki.root_der])
        assert report.valid and report.signatures[0].level == "B-LT", report.to_dict()
        # Only the revocation data of this signer's chains, not one more per document.
        assert report.dss is not None and report.dss["ocsps"] == 1, report.dss


def test_revocation_data_is_refetched_when_reuse_is_off(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource
) -> None:
    policy = SigningPolicy(level="B-LT", tsa_url=cpki.tsa_url)
    with PadesSigner(
        policy, cpki_source, trust_roots=[cpki.root_der], revinfo_reuse=timedelta(0)
    ) as signer:
        for i in range(2):
            pdf = signer.sign(make_pdf([str(i)])).pdf
            assert validate(pdf, trust_roots=[cpki.root_der]).signatures[0].level == "B-LT"
        assert signer.revinfo_contexts_built == 2


def test_many_b_t_signatures_in_flight_share_one_signer(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource
) -> None:
    policy = SigningPolicy(level="B-T", tsa_url=cpki.tsa_url)
    results: dict[int, bytes] = {}
    errors: list[BaseException] = []
    with PadesSigner(policy, cpki_source) as signer:

        def work(i: int) -> None:
            try:
                results[i] = signer.sign(make_pdf([f"Draad {i}"])).pdf
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    assert len(results) == 6
    # close() stopped the signer's loop thread.
    assert not [t for t in threading.enumerate() if t.name == "kluis-signing-loop"]
    for pdf in results.values():
        check = validate(pdf, trust_roots=[cpki.root_der]).signatures[0]
        assert check.level == "B-T" and check.intact, check


def test_revocation_data_is_not_reused_past_its_next_update(
    cpki: CertomancerPki, cpki_source: Pkcs12KeySource
) -> None:
    policy = SigningPolicy(level="B-LT", tsa_url=cpki.tsa_url)
    with PadesSigner(
        policy, cpki_source, trust_roots=[cpki.root_der], revinfo_reuse=timedelta(days=1)
    ) as signer:
        signer.sign(make_pdf())
        cache = signer._network.revinfo()
        context = cache._context
        assert context is not None and context.ocsps  # what the DSS got
        now = datetime.now(UTC)
        assert cache._usable(context, now)
        # The test PKI's OCSP responses are good for 10 minutes (REPORT §1).
        assert not cache._usable(context, now + timedelta(minutes=11))
