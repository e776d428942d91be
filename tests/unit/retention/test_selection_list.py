from datetime import date
from pathlib import Path

import pytest

from retention.errors import InvalidSelectionListError
from retention.selection_list import Period, load_selection_list, parse_selection_list

DEFAULT = Path(__file__).parents[3] / "kluis" / "defaults" / "selectielijst.toml"


def test_default_list_loads() -> None:
    selection = load_selection_list(DEFAULT)
    assert selection.version
    assert {"attest", "besluit", "brief"} <= set(selection.rules)
    assert selection.retention_end("attest", date(2020, 3, 1)) == date(2030, 3, 1)
    assert selection.retention_end("diploma", date(2020, 3, 1)) is None


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("P10Y", date(2020, 2, 29), date(2030, 2, 28)),
        ("P6M", date(2020, 8, 31), date(2021, 2, 28)),
        ("P1Y2M3D", date(2020, 1, 1), date(2021, 3, 4)),
        ("P30D", date(2020, 1, 1), date(2020, 1, 31)),
    ],
)
def test_periods(text: str, start: date, end: date) -> None:
    assert Period.parse(text).after(start) == end


@pytest.mark.parametrize("text", ["", "P", "10Y", "P1W", "PT1H", "P-1Y"])
def test_bad_periods(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


def test_every_problem_is_reported() -> None:
    raw = {
        "types": {
            "Attest": {"retention": "P10Y", "action": "destroy"},
            "brief": {"retention": "ten years", "action": "destroy"},
            "akte": {"retention": "P10Y", "action": "shred", "colour": "red"},
        }
    }
    with pytest.raises(InvalidSelectionListError) as caught:
        parse_selection_list(raw, source="test")
    text = str(caught.value)
    for fragment in [
        "version",
        "types.Attest",
        "types.brief.retention",
        "types.akte.action",
        "colour",
    ]:
        assert fragment in text


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "list.toml"
    bad.write_text("version = ")
    with pytest.raises(InvalidSelectionListError):
        load_selection_list(bad)
