"""The production search backend: OpenSearch through opensearch-py.

Layout: an index template ``<alias>`` applies our settings and explicit mappings (see
:mod:`search._opensearch_bodies`, which also explains the analysis choice) to every index
named ``<alias>-*``. Kluis reads and writes only through the alias ``<alias>``. A full
rebuild (:meth:`OpenSearchIndex.rebuild`) loads a fresh ``<alias>-<timestamp>`` index with
bulk requests and then moves the alias in one atomic ``_aliases`` call, so searches never
see a half-built index; the old index is deleted afterwards.

Invariants:
    * Same query semantics as the tantivy backend (the contract suite runs on both): the
      text is analysed in Python, filters never score, ``newest`` is (ingested_at desc,
      aip_id asc) paged with ``search_after`` on exactly the cursor key of
      :mod:`search._paging`, ``relevance`` pages by offset up to 10,000.
    * ``submit``/``remove`` return once OpenSearch acknowledged the bulk request (durable in
      its translog); documents become searchable at the next refresh (``refresh_interval``
      1 s, or :meth:`refresh`).
    * An index built with another mapping or analysis version (its mapping's ``_meta``, see
      :func:`search._opensearch_bodies.built_with`) is refused, as tantivy refuses one: every
      read and write raises :class:`~search.errors.IndexUnavailableError` naming the versions,
      except :meth:`OpenSearchIndex.rebuild` (``kluis reindex --swap``), which builds a new
      index from the current template. Other processes notice the rebuilt index within
      :data:`STALE_RECHECK_SECONDS`.
    * No opensearch-py exception leaves this module: connection and server failures become
      :class:`~search.errors.IndexUnavailableError`; a rejected bulk item too (with its
      reason). Every request body comes from :mod:`search._opensearch_bodies`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, OpenSearchException

from search import _opensearch_bodies as bodies
from search._paging import (
    MAX_RELEVANCE_WINDOW,
    NewestCursor,
    RelevanceCursor,
    check_aip_ids,
    check_query,
    check_retention,
    decode_cursor,
    effective_sort,
    encode_cursor,
)
from search._tantivy_schema import from_micros
from search.errors import IndexUnavailableError
from search.model import Hit, IdPage, IndexDocument, Page, Query

log = logging.getLogger(__name__)

BACKEND = "opensearch"
BULK_DOCUMENTS = 1000
_ID_PAGE = 10_000
STALE_RECHECK_SECONDS = 5.0


class Client(Protocol):
    """The part of ``opensearchpy.OpenSearch`` we use (a fake stands in for unit tests)."""

    @property
    def indices(self) -> Any: ...

    def bulk(self, body: Any, **kwargs: Any) -> Any: ...

    def search(self, body: Any, **kwargs: Any) -> Any: ...

    def get(self, index: str, id: str, **kwargs: Any) -> Any: ...

    def delete_by_query(self, index: str, body: Any, **kwargs: Any) -> Any: ...

    def close(self) -> None: ...


def connect(
    url: str, *, username: str | None = None, password: str | None = None, verify_certs: bool = True
) -> Client:
    """An ``opensearchpy.OpenSearch`` client for ``url``."""
    auth = (username, password) if username is not None and password is not None else None
    client: Client = OpenSearch(
        hosts=[url], http_auth=auth, verify_certs=verify_certs, timeout=30, max_retries=2
    )
    return client


class OpenSearchIndex:
    """:class:`~search.base.Index` on an OpenSearch alias."""

    name = BACKEND

    def __init__(
        self, client: Client, alias: str = "kluis-documents", *, replicas: int = 1
    ) -> None:
        """Install the template and create the first index behind ``alias`` if needed.

        Raises:
            IndexUnavailableError: the cluster is unreachable or refused the setup.
        """
        self._client = client
        self.alias = alias
        self._replicas = replicas
        self._closed = False
        self._stale: str | None = None
        self._recheck_at = 0.0
        self._call(self._ensure)

    # ------------------------------------------------------------------ plumbing
    def _call(self, fn: Callable[[], Any]) -> Any:
        """Run one client call, translating opensearch-py failures."""
        if self._closed:
            raise IndexUnavailableError(BACKEND, "index is closed")
        try:
            return fn()
        except OpenSearchException as exc:
            raise IndexUnavailableError(BACKEND, f"{type(exc).__name__}: {exc}") from exc

    def _ensure(self) -> None:
        self._client.indices.put_index_template(
            name=self.alias, body=bodies.index_template(self.alias, replicas=self._replicas)
        )
        if not self._client.indices.exists_alias(name=self.alias):
            self._client.indices.create(
                index=f"{self.alias}-{_stamp()}", body=bodies.create_index(self.alias)
            )
            return
        self._read_versions()

    def _read_versions(self) -> None:
        self._stale = _stale(self._client.indices.get_mapping(index=self.alias))
        self._recheck_at = time.monotonic() + STALE_RECHECK_SECONDS

    def _check_current(self) -> None:
        """Refuse an index built with other versions (re-read now and then: another process
        may have rebuilt it).

        Raises:
            IndexUnavailableError.
        """
        if self._stale is not None and time.monotonic() >= self._recheck_at:
            self._call(self._read_versions)
        if self._stale is not None:
            raise IndexUnavailableError(
                BACKEND, f"{self._stale}; run `kluis reindex --swap` to rebuild it"
            )

    def _bulk(self, lines: list[bodies.Body], *, refresh: bool = False) -> None:
        if not lines:
            return
        response = self._call(
            lambda: self._client.bulk(
                body=bodies.ndjson(lines), refresh="true" if refresh else "false"
            )
        )
        if response.get("errors"):
            for item in response.get("items", []):
                ((op, result),) = item.items()
                status = int(result.get("status", 500))
                if status >= 300 and not (op == "delete" and status == 404):
                    raise IndexUnavailableError(
                        BACKEND, f"bulk {op} of {result.get('_id')} failed: {result.get('error')}"
                    )

    # ------------------------------------------------------------------ writes
    def submit(self, documents: Sequence[IndexDocument]) -> None:
        """Raises: ValueError (malformed id), IndexUnavailableError."""
        docs = tuple(documents)
        check_aip_ids([d.aip_id for d in docs])
        self._check_current()
        for start in range(0, len(docs), BULK_DOCUMENTS):
            self._bulk(bodies.bulk_index_lines(self.alias, docs[start : start + BULK_DOCUMENTS]))

    def remove(self, aip_ids: Sequence[str]) -> None:
        """Raises: ValueError (malformed id), IndexUnavailableError."""
        ids = tuple(aip_ids)
        check_aip_ids(ids)
        self._check_current()
        for start in range(0, len(ids), BULK_DOCUMENTS):
            self._bulk(bodies.bulk_delete_lines(self.alias, ids[start : start + BULK_DOCUMENTS]))

    def load(
        self,
        documents: Iterable[IndexDocument],
        *,
        progress: Callable[[int], None] | None = None,
        target: str | None = None,
    ) -> int:
        """Bulk upserts into ``target`` (default: the alias). Returns the count."""
        if target is None:
            self._check_current()
        count = 0
        batch: list[IndexDocument] = []
        index = target or self.alias

        def flush() -> None:
            check_aip_ids([d.aip_id for d in batch])
            self._bulk(bodies.bulk_index_lines(index, batch))

        for doc in documents:
            batch.append(doc)
            if len(batch) >= BULK_DOCUMENTS:
                flush()
                count += len(batch)
                batch = []
                if progress is not None:
                    progress(count)
        if batch:
            flush()
            count += len(batch)
        if progress is not None:
            progress(count)
        return count

    def rebuild(
        self, documents: Iterable[IndexDocument], *, progress: Callable[[int], None] | None = None
    ) -> int:
        """Load ``documents`` into a new index, then swap the alias to it atomically and
        delete the old indices. Searches use the old index until the swap."""
        new = f"{self.alias}-{_stamp()}"
        self._call(lambda: self._client.indices.create(index=new, body=bodies.create_index(None)))
        count = self.load(documents, progress=progress, target=new)
        self._call(lambda: self._client.indices.refresh(index=new))
        old = list(self._call(lambda: self._client.indices.get_alias(name=self.alias)))
        self._call(
            lambda: self._client.indices.update_aliases(
                body=bodies.alias_swap(self.alias, new, old)
            )
        )
        self._call(lambda: [self._client.indices.delete(index=name) for name in old])
        self._stale = None
        return count

    def clear(self) -> None:
        self._check_current()
        self._call(
            lambda: self._client.delete_by_query(
                index=self.alias, body=bodies.delete_all(), refresh=True, conflicts="proceed"
            )
        )

    def refresh(self) -> None:
        self._call(lambda: self._client.indices.refresh(index=self.alias))

    # ------------------------------------------------------------------ reads
    def _search(self, body: bodies.Body) -> dict[str, Any]:
        self._check_current()
        result: dict[str, Any] = self._call(
            lambda: self._client.search(index=self.alias, body=body)
        )
        return result

    def search(self, query: Query) -> Page:
        """Raises: InvalidQueryError, IndexUnavailableError."""
        check_query(query)
        cursor = decode_cursor(query)
        if effective_sort(query) == "newest":
            after = cursor if isinstance(cursor, NewestCursor) else None
            result = self._search(bodies.search_newest(query, after))
            rows = result["hits"]["hits"]
            hits = [_hit(r) for r in rows[: query.limit]]
            token = None
            if len(rows) > query.limit:
                last = hits[-1]
                token = encode_cursor(
                    query, NewestCursor(int(rows[query.limit - 1]["sort"][0]), last.aip_id)
                )
        else:
            offset = cursor.offset if isinstance(cursor, RelevanceCursor) else 0
            result = self._search(bodies.search_relevance(query, offset))
            rows = result["hits"]["hits"]
            hits = [_hit(r, float(r.get("_score") or 0.0)) for r in rows[: query.limit]]
            end = offset + query.limit
            more = len(rows) > query.limit and end < MAX_RELEVANCE_WINDOW
            token = encode_cursor(query, RelevanceCursor(end)) if more else None
        return Page(
            hits=tuple(hits),
            total=int(result["hits"]["total"]["value"]),
            next_cursor=token,
            facets=_facets(result, query),
        )

    def retention_due(self, before: date, *, after: str | None = None, limit: int = 1000) -> IdPage:
        check_retention(limit, after)
        rows = self._search(bodies.retention(before, after, limit))["hits"]["hits"]
        ids = tuple(str(r["_id"]) for r in rows)
        return IdPage(ids=ids, next_after=ids[-1] if len(ids) == limit else None)

    def get(self, aip_id: str) -> Hit | None:
        check_aip_ids([aip_id])
        self._check_current()
        try:
            found = self._call(
                lambda: self._client.get(
                    index=self.alias, id=aip_id, _source_includes=bodies.HIT_SOURCE
                )
            )
        except IndexUnavailableError as exc:
            if isinstance(exc.__cause__, NotFoundError):
                return None
            raise
        return _hit(found) if found.get("found") else None

    def _listing(self) -> Iterator[tuple[str, str]]:
        after: str | None = None
        while True:
            rows = self._search(bodies.id_listing(after, _ID_PAGE))["hits"]["hits"]
            for r in rows:
                yield str(r["_id"]), str((r.get("_source") or {}).get("digest", ""))
            if len(rows) < _ID_PAGE:
                return
            after = str(rows[-1]["_id"])

    def ids(self) -> Iterator[str]:
        self._check_current()
        return (aip_id for aip_id, _ in self._listing())

    def digests(self) -> Iterator[tuple[str, str]]:
        self._check_current()
        return self._listing()

    def start_indexer(self) -> None:
        """Nothing to start: the cluster applies writes itself (here for the wiring, which
        starts the tantivy indexer thread the same way)."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()


def _stale(mappings: dict[str, Any]) -> str | None:
    """Why the indices behind the alias (``GET <alias>/_mapping``) cannot be used, or None."""
    want = bodies.built_with()
    wrong = []
    for name, record in sorted(mappings.items()):
        meta = ((record or {}).get("mappings") or {}).get("_meta") or {}
        found = meta.get("kluis")
        if found != want:
            wrong.append(f"{name} was built with {found or 'unrecorded versions'}")
    if not wrong:
        return None
    return f"{', '.join(wrong)}; this version needs {want}"


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + f"{time.perf_counter_ns() % 1000:03d}"


def _hit(row: dict[str, Any], score: float = 0.0) -> Hit:
    src = row["_source"]
    return Hit(
        aip_id=str(src["aip_id"]),
        title=str(src["title"]),
        agency_id=str(src["agency_id"]),
        document_type=str(src["document_type"]),
        issued_on=date.fromisoformat(src["issued_on"]),
        ingested_at=from_micros(int(src["ingested_us"])),
        score=score,
    )


def _facets(result: dict[str, Any], query: Query) -> dict[str, dict[str, int]]:
    facets: dict[str, dict[str, int]] = {}
    aggregations = result.get("aggregations", {})
    for name in dict.fromkeys(query.facets):
        buckets = aggregations.get(name, {}).get("buckets", [])
        pairs = [(str(b["key"]), int(b["doc_count"])) for b in buckets]
        facets[name] = dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))
    return facets
