import pytest

from ingest.owners import InvalidOwnerNumber, parse_owner


@pytest.mark.parametrize(
    ("raw", "digits", "kind"),
    [
        ("85073003328", "85073003328", "person"),
        ("85.07.30-033.28", "85073003328", "person"),
        # Born in 2000 or later: the check digits are computed over '2' + the first nine.
        ("00010100105", "00010100105", "person"),
        ("0203.201.340", "0203201340", "enterprise"),
        ("0417497106", "0417497106", "enterprise"),
    ],
)
def test_valid_numbers(raw: str, digits: str, kind: str) -> None:
    owner = parse_owner(raw)
    assert owner.id == digits
    assert owner.kind == kind


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("85073003329", "check digits"),
        ("0203201341", "check digits"),
        ("2203201340", "starts with 0 or 1"),
        ("8507300332", "starts with 0 or 1"),
        ("123", "11 digits"),
        ("8507300332a", "only digits"),
        ("", "only digits"),
    ],
)
def test_invalid_numbers(raw: str, reason: str) -> None:
    with pytest.raises(InvalidOwnerNumber, match=reason):
        parse_owner(raw)
