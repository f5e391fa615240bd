"""``Collection``: Chroma's collection API. It validates, embeds, and calls the engine."""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from uuid import UUID

import numpy as np
import pyarrow as pa

from lakevec import interop
from lakevec import validate as v
from lakevec.config import collection_schema
from lakevec.engine import CollectionEngine
from lakevec.errors import InvalidArgumentError
from lakevec.expression import knn_nodes
from lakevec.extras import require
from lakevec.maintenance.compact import compact
from lakevec.maintenance.indexer import Indexer
from lakevec.maintenance.vacuum import vacuum
from lakevec.sparse_schema import embed_sparse_queries, fill_sparse, idf_keys
from lakevec.types import GetResult, QueryResult, SearchResult
from lakevec.write.embed import embed_documents


class Owner(Protocol):
    """What a collection asks of the client that opened it (``Client`` or ``HttpClient``)."""

    def _check_exists(self, collection: Collection) -> None: ...

    def _modify_collection(
        self, collection: Collection, name: Any, metadata: Any, configuration: Any
    ) -> dict[str, Any]: ...

    def _fork_collection(self, collection: Collection, new_name: str) -> Collection: ...


_GET_DEFAULT = ["metadatas", "documents"]
_QUERY_DEFAULT = ["metadatas", "documents", "distances"]


class Collection:
    def __init__(
        self,
        client: Owner,
        record: dict[str, Any],
        engine: CollectionEngine,
        embedding_function: Any,
        tenant: str,
        database: str,
        indexer: Indexer | None = None,
    ) -> None:
        self._client = client
        self._record = record
        self._engine = engine
        self._indexer = indexer  # None for read-only versions and HttpClient collections
        self._embedding_function = embedding_function
        self.tenant = tenant
        self.database = database

    # -- properties ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._record["name"]

    @property
    def id(self) -> UUID:
        return UUID(self._record["id"])

    @property
    def metadata(self) -> dict[str, Any] | None:
        return self._record["metadata"]

    @property
    def configuration(self) -> dict[str, Any]:
        return self._record["configuration"]

    @property
    def configuration_json(self) -> dict[str, Any]:
        return self._record["configuration"]

    @property
    def schema(self) -> dict[str, Any]:
        """Chroma 1.5's collection schema, as its JSON document (``Schema.deserialize_from_json``
        makes chromadb's object of it): the schema given at creation, or Chroma's default, with
        the vector index stating the current configuration. lakevec indexes every metadata key
        whatever the schema says."""
        return collection_schema(self._record.get("schema"), self.configuration)

    @property
    def embedding_function(self) -> Any:
        return self._embedding_function

    def __repr__(self) -> str:
        return f"Collection(name={self.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Collection) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    # -- helpers -------------------------------------------------------------------------
    def _embed(self, documents: list[str | None] | None, op: str, query: bool = False) -> np.ndarray | None:
        if documents is None:
            return None
        if self._embedding_function is None:
            raise InvalidArgumentError(
                f"You must provide embeddings or an embedding function to compute them in {op}."
            )
        if isinstance(documents, pa.Array):
            documents = documents.to_pylist()
        if any(d is None for d in documents):
            raise InvalidArgumentError(f"Cannot embed a None document in {op}.")
        return embed_documents(self._embedding_function, documents, op, query=query)

    def _prepare(
        self,
        op: str,
        ids: Any,
        embeddings: Any,
        metadatas: Any,
        documents: Any,
        uris: Any,
        images: Any,
    ) -> tuple[list[str], np.ndarray | None, list | None, list | None, list | None]:
        if self._engine.pinned_version is not None:
            raise self._engine.read_only_error()
        if images is not None:
            raise InvalidArgumentError(f"images are not supported by lakevec in {op}.")
        ids = v.validate_ids(ids)
        n = len(ids)
        if documents is not None:
            documents = v.validate_documents(documents, n)
        if uris is not None:
            uris = v.validate_documents(uris, n, field="uris")
        if metadatas is not None:
            metadatas = v.validate_metadatas(metadatas, n, allow_none_values=op != "add")
        metadatas = fill_sparse(self._record.get("schema"), metadatas, documents, n)
        if embeddings is None:
            if documents is None and op != "update":
                raise InvalidArgumentError(
                    f"Exactly one of uris, images, documents must be provided in {op}."
                )
            embeddings = self._embed(documents, op)
        if embeddings is not None:
            embeddings = v.validate_embeddings(embeddings, n, self._engine.dimension())
        self._client._check_exists(self)
        return ids, embeddings, metadatas, documents, uris

    # -- Chroma's API --------------------------------------------------------------------
    def count(self) -> int:
        return self._engine.count()

    def add(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        """Insert new rows; ids that already exist are left as they are (as Chroma does)."""
        ids, emb, metas, docs, uris = self._prepare(
            "add", ids, embeddings, metadatas, documents, uris, images
        )
        self._engine.add(ids, emb, docs, uris, metas)

    def upsert(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        ids, emb, metas, docs, uris = self._prepare(
            "upsert", ids, embeddings, metadatas, documents, uris, images
        )
        self._engine.upsert(ids, emb, docs, uris, metas, update_only=False)

    def update(
        self,
        ids: Any,
        embeddings: Any = None,
        metadatas: Any = None,
        documents: Any = None,
        images: Any = None,
        uris: Any = None,
    ) -> None:
        ids, emb, metas, docs, uris = self._prepare(
            "update", ids, embeddings, metadatas, documents, uris, images
        )
        self._engine.upsert(ids, emb, docs, uris, metas, update_only=True)

    def delete(
        self,
        ids: Any = None,
        where: Any = None,
        where_document: Any = None,
        limit: int | None = None,
        *,
        where_sql: str | None = None,
    ) -> dict[str, int]:
        """Delete the rows the ids and filters select; ``limit`` (with a filter) deletes at most
        that many, the first in insertion order. Returns ``{"deleted": rows deleted}``."""
        if ids is None and where is None and where_document is None and where_sql is None:
            raise InvalidArgumentError(
                "At least one of ids, where, or where_document must be provided in delete."
            )
        limit = v.validate_limit(limit, "limit")
        if limit is not None and where is None and where_document is None and where_sql is None:
            raise InvalidArgumentError(
                "limit can only be specified when a where or where_document clause is provided"
            )
        ids = v.validate_filters(ids, where, where_document, where_sql)
        self._client._check_exists(self)
        deleted = self._engine.delete(
            ids=ids, where=where, where_document=where_document, where_sql=where_sql, limit=limit
        )
        return {"deleted": deleted}

    def get(
        self,
        ids: Any = None,
        where: Any = None,
        limit: int | None = None,
        offset: int | None = None,
        where_document: Any = None,
        include: Any = None,
        *,
        where_sql: str | None = None,
        order_by: Any = None,
    ) -> GetResult:
        """Rows by id and/or filter, in insertion order, like Chroma's ``get``. lakevec extras:
        ``where_sql``, a DuckDB boolean expression over ``id``, ``document`` and metadata keys;
        ``order_by``, a key or a list of keys and ``(key, "asc" | "desc")`` pairs."""
        ids = v.validate_filters(ids, where, where_document, where_sql)
        order = v.validate_order_by(order_by)
        include = v.validate_include(_GET_DEFAULT if include is None else include, allow_distances=False)
        limit = v.validate_limit(limit, "limit")
        offset = v.validate_limit(offset, "offset")
        return self._engine.get(
            ids=ids,
            where=where or None,
            where_document=where_document or None,
            limit=limit,
            offset=offset,
            include=include,
            where_sql=where_sql,
            order_by=order,
        )  # type: ignore[return-value]

    def query(
        self,
        query_embeddings: Any = None,
        query_texts: Any = None,
        query_images: Any = None,
        query_uris: Any = None,
        ids: Any = None,
        n_results: int = 10,
        where: Any = None,
        where_document: Any = None,
        include: Any = None,
        *,
        where_sql: str | None = None,
    ) -> QueryResult:
        """The ``n_results`` nearest rows to each query that pass the filters, nearest first."""
        if query_images is not None or query_uris is not None:
            raise InvalidArgumentError("query_images and query_uris are not supported by lakevec in query.")
        if (query_embeddings is None) == (query_texts is None):
            raise InvalidArgumentError(
                "Exactly one of query_embeddings or query_texts must be provided in query."
            )
        n_results = v.validate_n_results(n_results)
        include = v.validate_include(_QUERY_DEFAULT if include is None else include, allow_distances=True)
        ids = v.validate_filters(ids, where, where_document, where_sql, allow_empty_ids=True)
        if query_texts is not None:
            texts = v.validate_documents(
                v.one_to_many(query_texts), len(v.one_to_many(query_texts)), field="query_texts"
            )
            query_embeddings = self._embed(texts, "query", query=True)
        result = self._engine.query(
            query_embeddings,
            n_results,
            ids=ids,
            where=where or None,
            where_document=where_document or None,
            include=include,
            hnsw=self.configuration["hnsw"],
            where_sql=where_sql,
        )
        return interop.QueryResult(result)  # type: ignore[return-value]

    def search(self, searches: Any, read_level: Any = None) -> SearchResult:
        """Chroma's Search API: one ``Search`` (chromadb's or lakevec's, or its dict form) or a
        list, each filtered, ranked, grouped, paged and selected; text ``Knn`` queries are
        embedded with the collection's embedding function. ``read_level`` is accepted for
        Chroma's signature: every read here sees the newest committed version."""
        items = searches if isinstance(searches, (list, tuple)) else [searches]
        if not items:
            raise InvalidArgumentError("Expected at least one search")
        payloads = [s.to_dict() if hasattr(s, "to_dict") else copy.deepcopy(s) for s in items]
        # text to embed; a Knn over #document is BM25, which takes the text itself
        nodes = knn_nodes([p.get("rank") for p in payloads if isinstance(p, dict)])
        embed_sparse_queries(self._record.get("schema"), nodes)
        leaves = [
            knn
            for knn in nodes
            if isinstance(knn.get("query"), str) and knn.get("key", "#embedding") == "#embedding"
        ]
        if leaves:
            vectors = self._embed([leaf["query"] for leaf in leaves], "search", query=True)
            for leaf, vector in zip(leaves, vectors):  # type: ignore[arg-type]
                leaf["query"] = np.asarray(vector, dtype=np.float32).tolist()
        idf = idf_keys(self._record.get("schema"))
        result = self._engine.search(payloads, hnsw=self.configuration["hnsw"], idf_keys=idf)
        return SearchResult(result)

    def wait_for_index(self, timeout: float | None = None) -> None:
        """Block until every committed row is in an HNSW index (queries are exact meanwhile)."""
        if self._indexer is not None:
            self._indexer.wait(timeout)

    def _local(self, what: str) -> CollectionEngine:
        """The engine, for the calls only a root opened in this process can serve."""
        if not isinstance(self._engine, CollectionEngine):
            raise NotImplementedError(
                f"{what} is not available through HttpClient: open the root with PersistentClient for it"
            )
        return self._engine

    # -- lakehouse extras (not in Chroma's API) ---------------------------------------------
    def to_arrow(
        self,
        where: Any = None,
        where_document: Any = None,
        include: Any = None,
        *,
        where_sql: str | None = None,
    ) -> pa.Table:
        """Live rows in insertion order: ``id``, ``document``, ``uri``, one typed column per
        metadata key, ``embedding`` (fixed_size_list<float32>)."""
        v.validate_filters(None, where, where_document, where_sql)
        include = list(interop.TABLE_INCLUDE if include is None else include)
        bad = [i for i in include if i not in interop.TABLE_INCLUDE]
        if bad:
            raise InvalidArgumentError(f"include must be among {interop.TABLE_INCLUDE}, got {bad}")
        return interop.collection_table(
            self._engine,
            where=where or None,
            where_document=where_document or None,
            where_sql=where_sql,
            include=include,
        )

    def add_table(self, data: Any, **columns: Any) -> int:
        """``add`` every row of a table (pyarrow / polars / pandas / DuckDB / a Parquet, CSV or
        JSON-lines path), streamed in batches. Returns the number of rows read."""
        return self._write_table(data, "add", **columns)

    def upsert_table(self, data: Any, **columns: Any) -> int:
        """``upsert`` every row of a table; see :meth:`add_table`."""
        return self._write_table(data, "upsert", **columns)

    def _write_table(self, data: Any, op: str, **columns: Any) -> int:
        return interop.import_table(self._engine, self._prepare, data, op, **columns)

    def duckdb(self, con: Any = None):
        """The live rows as a DuckDB relation (Parquet scanned in place on local roots)."""
        import duckdb

        return interop.duckdb_relation(self._engine, con if con is not None else duckdb.connect())

    def scan(self):
        """The live rows as a polars LazyFrame; filters and projections reach the Parquet scan."""
        return self.duckdb().pl(lazy=True)

    def to_polars(self, **kwargs: Any):
        import polars as pl

        return pl.from_arrow(self.to_arrow(**kwargs))

    def to_pandas(self, **kwargs: Any):
        require("pandas", "to_pandas()")
        return self.to_arrow(**kwargs).to_pandas()

    # -- versions ------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The version this object reads: the latest, or the one it was opened at."""
        return self._engine.snapshot().version

    def versions(self) -> list[dict[str, Any]]:
        """Every retained version, oldest first: number, commit time (UTC), operation, rows."""
        return [
            {
                "version": m.version,
                "timestamp": datetime.fromtimestamp(m.timestamp, tz=timezone.utc),
                "operation": m.operation,
                "rows": sum(f.rows for f in m.fragments),
                "live_rows": m.live_rows,
            }
            for m in self._engine.manifests()
        ]

    def at(
        self,
        version: int | None = None,
        *,
        timestamp: datetime | float | None = None,
        tag: str | None = None,
    ) -> Collection:
        """This collection as it was at ``version`` (or at ``timestamp``, or at the version
        ``tag`` names), read-only: ``get``, ``query``, ``search``, ``count``, ``to_arrow`` and
        friends work; writes raise."""
        if sum(x is not None for x in (version, timestamp, tag)) != 1:
            raise InvalidArgumentError("give exactly one of version, timestamp or tag")
        if tag is not None:
            version = self._engine.tags.get(tag)
        elif timestamp is not None:
            seconds = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
            version = self._engine.version_at(seconds)
        engine = self._engine.pinned(version)
        return Collection(
            self._client, self._record, engine, self._embedding_function, self.tenant, self.database
        )  # no indexer: a version is read-only

    def tag(self, name: str, version: int | None = None) -> int:
        """Name a version (the one this object reads by default) so that vacuum keeps it and
        ``at(tag=name)`` opens it. Returns the version tagged."""
        engine = self._local("tag")
        version = engine.snapshot().version if version is None else version
        engine.pinned(version)  # checks that the version exists and is retained
        engine.tags.create(name, version)
        return version

    def tags(self) -> dict[str, int]:
        """Every tag of this collection and the version it names."""
        return self._local("tags").tags.all()

    def delete_tag(self, name: str) -> None:
        """Remove a tag; its version is then kept only as long as vacuum's window keeps it."""
        self._local("delete_tag").tags.delete(name)

    def fork(self, new_name: str) -> Collection:
        """A new collection named ``new_name`` holding this collection's rows (as of the version
        this object reads), sharing its files: nothing is copied, and later writes to either
        collection do not show in the other. Chroma offers this in its cloud only."""
        return self._client._fork_collection(self, new_name)

    def fork_count(self) -> int:
        """How many live collections were forked from this one."""
        if not isinstance(self._engine, CollectionEngine):
            return self._client._fork_count(self)  # type: ignore[attr-defined]
        return self._engine.fork_count()

    def vacuum(
        self,
        older_than: timedelta = timedelta(days=7),
        keep_versions: int = 1,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete old versions and every file no retained version needs (superseded fragments,
        indexes, deletion files, orphans of crashed writes). Versions newer than ``older_than``
        and the newest ``keep_versions`` are retained; ``dry_run`` lists without deleting."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise InvalidArgumentError(f"older_than must be a non-negative timedelta, got {older_than!r}")
        if not isinstance(keep_versions, int) or isinstance(keep_versions, bool) or keep_versions < 1:
            raise InvalidArgumentError(f"keep_versions must be an int >= 1, got {keep_versions!r}")
        return dataclasses.asdict(vacuum(self._local("vacuum"), float(seconds), keep_versions, dry_run))

    def compact(self, target_rows: int = 1_000_000) -> dict[str, Any]:
        """Rewrite small fragments and fragments with dead rows into fragments of up to
        ``target_rows`` live rows, rebuild indexes that are mostly dead keys, and index
        everything. Concurrent writes are kept (the commit rebases over them)."""
        if not isinstance(target_rows, int) or isinstance(target_rows, bool) or target_rows < 1:
            raise InvalidArgumentError(f"target_rows must be a positive int, got {target_rows!r}")
        engine = self._local("compact")
        if self._indexer is None:
            raise engine.read_only_error()
        return compact(self._indexer, target_rows)

    def stats(self) -> dict[str, Any]:
        """Version, retained versions, fragments, rows (live and dead), indexed fraction and
        bytes on storage of the version this object reads."""
        return self._engine.stats()

    def restore(self, version: int) -> int:
        """Make the rows of an older version the latest state, as a new commit (history is
        kept: the versions in between stay readable). Returns the new version number."""
        if self._engine.pinned_version is not None:
            raise self._engine.read_only_error()
        return self._engine.restore(version)

    def peek(self, limit: int = 10) -> GetResult:
        return self.get(limit=limit, include=["metadatas", "documents", "embeddings"])

    def modify(
        self,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        configuration: dict[str, Any] | None = None,
    ) -> None:
        """Rename, replace the metadata, or change the mutable parts of the configuration."""
        if self._engine.pinned_version is not None:
            raise self._engine.read_only_error()
        self._record = self._client._modify_collection(self, name, metadata, configuration)
