from __future__ import annotations

import dataclasses

import pytest

from signing.policy import SigningPolicy


def test_defaults() -> None:
    policy = SigningPolicy()
    assert (policy.level, policy.digest, policy.field_name) == ("B-B", "sha256", "KluisSeal")
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.digest = "sha512"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"level": "B-LTA"},
        {"digest": "sha1"},
        {"digest": "md5"},
        {"field_name": ""},
        {"field_name": "a.b"},
    ],
)
def test_rejects_unsupported_values(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        SigningPolicy(**kwargs)  # type: ignore[arg-type]
