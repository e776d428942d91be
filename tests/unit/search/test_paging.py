from __future__ import annotations

import base64
import json
from datetime import date

import pytest

from search._paging import (
    NewestCursor,
    RelevanceCursor,
    check_query,
    decode_cursor,
    encode_cursor,
)
from search.errors import InvalidQueryError
from search.model import Query


def _forge(body: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


def test_round_trip_and_page_size_may_change() -> None:
    query = Query(owner_key="k", text="vergunning")
    token = encode_cursor(query, NewestCursor(1_700_000_000_000_000, "aip-9"))
    assert decode_cursor(Query(owner_key="k", text="vergunning", limit=50, cursor=token)) == (
        NewestCursor(1_700_000_000_000_000, "aip-9")
    )
    relevance = Query(text="vergunning", sort="relevance")
    token = encode_cursor(relevance, RelevanceCursor(20))
    assert decode_cursor(
        Query(text="vergunning", sort="relevance", cursor=token)
    ) == RelevanceCursor(20)


def test_token_is_url_safe_and_carries_no_owner_key() -> None:
    query = Query(owner_key="secret-owner-key")
    token = encode_cursor(query, NewestCursor(1, "a"))
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert b"secret-owner-key" not in base64.urlsafe_b64decode(token + "==")


@pytest.mark.parametrize(
    "body",
    [
        {"v": 2, "s": "newest", "t": 1, "i": "a"},
        {"v": 1, "s": "newest", "t": "1", "i": "a"},
        {"v": 1, "s": "newest", "t": True, "i": "a"},
        {"v": 1, "s": "newest", "t": 1, "i": "a b"},
        {"v": 1, "s": "newest", "t": 1},
        {"v": 1, "s": "relevance", "o": 0},
        {"v": 1, "s": "relevance", "o": 10**9},
    ],
)
def test_forged_or_malformed_bodies_are_refused(body: dict[str, object]) -> None:
    query = Query(text="x", sort="relevance") if body.get("s") == "relevance" else Query()
    fingerprint = json.loads(
        base64.urlsafe_b64decode(encode_cursor(query, RelevanceCursor(1)) + "==")
    )
    token = _forge({**body, "q": fingerprint["q"]})
    with pytest.raises(InvalidQueryError):
        decode_cursor(Query(**{**query.__dict__, "cursor": token}))


def test_check_query() -> None:
    check_query(Query(limit=1))
    check_query(Query(limit=100))
    for bad in (Query(limit=0), Query(limit=101), Query(limit=True)):
        with pytest.raises(InvalidQueryError, match="limit"):
            check_query(bad)
    with pytest.raises(InvalidQueryError, match="facet"):
        check_query(Query(facets=("owner_key",)))  # type: ignore[arg-type]
    with pytest.raises(InvalidQueryError, match="issued_from"):
        check_query(Query(issued_from=date(2024, 2, 1), issued_to=date(2024, 1, 31)))
    with pytest.raises(InvalidQueryError, match="sort"):
        check_query(Query(sort="oldest"))  # type: ignore[arg-type]
