"""When a deposit's connection is closed: only where that spreads the work over workers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import pytest

from kluis.api.routers.agency import _spread
from kluis.wiring import Services


@pytest.mark.parametrize(
    ("workers", "ingest_processes", "closed"),
    [
        (1, 0, False),  # one worker: nowhere else to go
        (2, 0, True),  # workers compute deposits themselves: let an idle one take the next
        (2, 4, False),  # each worker's ingest processes can use every core: keep it
        (1, 2, False),
    ],
)
def test_a_deposit_closes_its_connection_only_to_spread_work(
    workers: int, ingest_processes: int, closed: bool
) -> None:
    settings = SimpleNamespace(workers=workers, ingest_processes=ingest_processes)
    headers = _spread(cast(Services, SimpleNamespace(settings=settings)))
    assert (headers == {"Connection": "close"}) is closed
    assert headers in ({}, {"Connection": "close"})
