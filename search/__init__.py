"""Search: the ``Index`` protocol, Dutch analysis, the query model, the tantivy backend
(``search.opensearch`` holds the OpenSearch one), the projection AIP → index document, the
rebuild from storage and the index reconcile.

Depends only on ``archive`` (its models). Storage is the truth; the index is a projection
that may lag about a second and can always be rebuilt (:func:`reindex`).
"""

from search.analysis import analyze
from search.base import Index, stream_retention_due
from search.errors import IndexUnavailableError, InvalidQueryError, SearchError
from search.model import Hit, IdPage, IndexDocument, Page, Query
from search.projection import OwnerKeyer, project
from search.reconcile import ReconcileReport, reconcile_index
from search.reindex import PackageSource, ReindexStats, reindex
from search.tantivy_index import TantivyIndex

__all__ = [
    "Hit",
    "IdPage",
    "Index",
    "IndexDocument",
    "IndexUnavailableError",
    "InvalidQueryError",
    "OwnerKeyer",
    "PackageSource",
    "Page",
    "Query",
    "ReconcileReport",
    "ReindexStats",
    "SearchError",
    "TantivyIndex",
    "analyze",
    "project",
    "reconcile_index",
    "reindex",
    "stream_retention_due",
]
