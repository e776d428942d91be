"""Search: the ``Index`` protocol, Dutch analysis, the query model, the tantivy backend,
the projection AIP → index document and the rebuild from storage.

Depends only on ``archive`` (its models). Storage is the truth; the index is a projection
that may lag about a second and can always be rebuilt (:func:`reindex`).
"""

from search.analysis import analyze
from search.base import Index
from search.errors import IndexUnavailableError, InvalidQueryError, SearchError
from search.model import Hit, IndexDocument, Page, Query
from search.projection import OwnerKeyer, project
from search.reindex import PackageSource, ReindexStats, reindex
from search.tantivy_index import TantivyIndex

__all__ = [
    "Hit",
    "Index",
    "IndexDocument",
    "IndexUnavailableError",
    "InvalidQueryError",
    "OwnerKeyer",
    "PackageSource",
    "Page",
    "Query",
    "ReindexStats",
    "SearchError",
    "TantivyIndex",
    "analyze",
    "project",
    "reindex",
]
