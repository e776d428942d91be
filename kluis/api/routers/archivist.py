"""Archivists search the whole archive."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kluis.api.deps import ArchivistDep, ServicesDep
from kluis.api.routers.loket import summary
from kluis.api.schemas import ArchiveSearchPage
from search.model import Query as IndexQuery

router = APIRouter(prefix="/v1/archive", tags=["archivist"])


@router.get("/search", response_model=ArchiveSearchPage)
def search_archive(
    archivist: ArchivistDep,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    agency: Annotated[str | None, Query(max_length=64)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ArchiveSearchPage:
    page = services.index.search(
        IndexQuery(
            text=q or None,
            agency_id=agency,
            document_type=type,
            sort="relevance" if q else "newest",
            limit=limit,
            cursor=cursor,
            facets=("agency_id", "document_type", "year"),
        )
    )
    return ArchiveSearchPage(
        items=[summary(h) for h in page.hits],
        total=page.total,
        next_cursor=page.next_cursor,
        facets={k: dict(v) for k, v in page.facets.items()},
    )
