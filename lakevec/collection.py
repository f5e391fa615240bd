"""``Collection``: Chroma's collection API. It validates, embeds, and calls the engine."""

from __future__ import annotations

import copy
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
from lakevec.lakehouse import Lakehouse
from lakevec.maintenance.indexer import Indexer
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


class Collection(Lakehouse):
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

    def _with_engine(self, engine: CollectionEngine) -> Collection:
        """This collection read through ``engine`` (a pinned version): no indexer, read-only."""
        return Collection(
            self._client, self._record, engine, self._embedding_function, self.tenant, self.database
        )

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
