from __future__ import annotations

import pickle

import pytest

from signing.errors import KeySourceError, SignatureFailedError, SigningError, UnreadablePdfError


@pytest.mark.parametrize(
    "error",
    [
        UnreadablePdfError("truncated"),
        KeySourceError("pkcs12:/x.p12", "wrong passphrase"),
        SignatureFailedError("key refused"),
    ],
)
def test_errors_carry_data_and_survive_pickling(error: SigningError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert vars(clone) == vars(error)
    assert isinstance(error, SigningError)


def test_messages_name_the_problem() -> None:
    assert UnreadablePdfError("truncated").reason == "truncated"
    error = KeySourceError("pkcs12:/x.p12", "wrong passphrase")
    assert (error.source, error.reason) == ("pkcs12:/x.p12", "wrong passphrase")
    assert "pkcs12:/x.p12" in str(error) and "wrong passphrase" in str(error)
