"""``lakevec.HttpClient``: the same Collection API against a ``lakevec run`` (or Chroma) server.

A :class:`~lakevec.Collection` validates and embeds on the caller's side exactly as it does
locally; only its engine differs: :class:`RemoteEngine` sends each operation as the REST call
the chromadb client would make (embeddings as base64 float32). Errors come back as the same
lakevec exception classes the local client raises.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from lakevec import errors
from lakevec.collection import Collection
from lakevec.errors import InvalidArgumentError, LakevecError
from lakevec.extras import require
from lakevec.lake.catalog import DEFAULT_DATABASE, DEFAULT_TENANT
from lakevec.types import SPARSE_TYPE, Database, SparseVector, Tenant
from lakevec.utils.embedding_functions import DefaultEmbeddingFunction, resolve_embedding_function

_DEFAULT_EF = DefaultEmbeddingFunction()
_BY_CHROMA_NAME = {
    "DuplicateID": errors.DuplicateIDError,
    "InvalidDimension": errors.InvalidDimensionException,
    "IDAlreadyExists": errors.IDAlreadyExistsError,
    "InvalidUUID": errors.InvalidUUIDError,
    "AuthError": errors.AuthorizationError,
}


def _error(response) -> LakevecError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    name = body.get("lakevec_error") or body.get("error") or ""
    cls = _BY_CHROMA_NAME.get(name) or getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, LakevecError)):
        cls = errors.InternalError
    return cls(body.get("message") or f"HTTP {response.status_code}: {response.text[:500]}")


def _b64(vectors: np.ndarray) -> list[str]:
    data = np.ascontiguousarray(vectors, dtype="<f4")
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in data]


class _Http:
    def __init__(self, host: str, port: int, ssl: bool, headers: dict[str, str] | None) -> None:
        httpx = require("httpx", "lakevec.HttpClient")
        scheme = "https" if ssl else "http"
        self.base = f"{scheme}://{host}:{port}/api/v2"
        self.session = httpx.Client(
            timeout=None, headers={"Content-Type": "application/json", **(headers or {})}
        )

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        import json

        content = None if body is None else json.dumps(body, default=_to_wire)
        params = {k: v for k, v in params.items() if v is not None}
        response = self.session.request(method, self.base + path, content=content, params=params or None)
        if response.status_code >= 400:
            raise _error(response)
        return response.json(object_hook=_from_wire)


def _to_wire(value: Any) -> Any:
    if isinstance(value, SparseVector) or (hasattr(value, "indices") and hasattr(value, "to_dict")):
        return value.to_dict()  # lakevec's or chromadb's sparse vector
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _from_wire(value: dict[str, Any]) -> Any:
    if value.get("#type") == SPARSE_TYPE:
        return SparseVector(value["indices"], value["values"], value.get("tokens"))
    return value


class RemoteEngine:
    """What :class:`Collection` needs of an engine, over HTTP."""

    pinned_version = None

    def __init__(self, http: _Http, prefix: str) -> None:
        self._http = http
        self._prefix = prefix  # /tenants/{t}/databases/{d}/collections/{id}

    def dimension(self) -> int | None:
        return None  # the server checks the dimension

    def count(self) -> int:
        return self._http.call("get", self._prefix + "/count")

    def _send(self, op: str, ids, embeddings, documents, uris, metadatas) -> None:
        body = {
            "ids": ids,
            "embeddings": None if embeddings is None else _b64(embeddings),
            "documents": documents,
            "uris": uris,
            "metadatas": metadatas,
        }
        self._http.call("post", f"{self._prefix}/{op}", body)

    def add(self, ids, embeddings, documents, uris, metadatas, **_: Any) -> None:
        self._send("add", ids, embeddings, documents, uris, metadatas)

    def upsert(self, ids, embeddings, documents, uris, metadatas, *, update_only: bool, **_: Any) -> None:
        self._send("update" if update_only else "upsert", ids, embeddings, documents, uris, metadatas)

    def delete(self, ids=None, where=None, where_document=None, where_sql=None, limit=None) -> int:
        body = {"ids": ids, "where": where, "where_document": where_document, "limit": limit}
        if where_sql is not None:
            body["where_sql"] = where_sql
        return int(self._http.call("post", self._prefix + "/delete", body).get("deleted", 0))

    def get(
        self, *, ids, where, where_document, limit, offset, include, where_sql=None, order_by=None
    ) -> dict[str, Any]:
        body = {
            "ids": ids,
            "where": where,
            "where_document": where_document,
            "limit": limit,
            "offset": offset,
            "include": list(include),
        }
        if order_by:
            body["order_by"] = [[key, "desc" if descending else "asc"] for key, descending in order_by]
        result = self._read("get", body, where_sql, include)
        if result.get("embeddings") is not None:
            result["embeddings"] = np.asarray(result["embeddings"], dtype=np.float32)
        return result

    def _read(self, op: str, body: dict[str, Any], where_sql: str | None, include) -> dict[str, Any]:
        if where_sql is not None:
            body["where_sql"] = where_sql
        result = self._http.call("post", f"{self._prefix}/{op}", body)
        result.setdefault("data", None)
        result["included"] = list(include)
        return result

    def query(
        self, queries, k: int, *, ids, where, where_document, include, hnsw, where_sql=None
    ) -> dict[str, Any]:
        try:
            vectors = np.asarray(queries, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"query_embeddings must be numbers: {exc}") from None
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        body = {
            "query_embeddings": vectors.tolist(),
            "ids": ids,
            "n_results": k,
            "where": where,
            "where_document": where_document,
            "include": list(include),
        }
        result = self._read("query", body, where_sql, include)
        if result.get("embeddings") is not None:
            result["embeddings"] = [np.asarray(e, dtype=np.float32) for e in result["embeddings"]]
        return result

    def search(
        self, payloads: list[Any], hnsw: dict[str, Any], idf_keys: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The server's search (it weighs sparse queries by its own schema)."""

        def plain(value: Any) -> Any:  # numpy query vectors as JSON lists
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value.tolist() if isinstance(value, np.ndarray) else value

        return self._http.call("post", self._prefix + "/search", {"searches": plain(payloads)})

    def __getattr__(self, name: str) -> Any:
        raise NotImplementedError(
            f"{name} is not available through HttpClient: open the root with PersistentClient for it"
        )


class HttpClient:
    """A client of a ``lakevec run`` server with chromadb.HttpClient's arguments."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8000,
        ssl: bool = False,
        headers: dict[str, str] | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
        settings: Any = None,
    ) -> None:
        self._http = _Http(host, port, ssl, headers)
        self.settings = settings
        self.tenant, self.database = DEFAULT_TENANT, DEFAULT_DATABASE
        self.set_tenant(tenant, database)

    # -- server, tenants, databases -------------------------------------------------------
    def heartbeat(self) -> int:
        return int(self._http.call("get", "/heartbeat")["nanosecond heartbeat"])

    def get_version(self) -> str:
        return self._http.call("get", "/version")

    def reset(self) -> bool:
        return bool(self._http.call("post", "/reset"))

    def set_tenant(self, tenant: str, database: str = DEFAULT_DATABASE) -> None:
        self.get_tenant(tenant)
        self.get_database(database, tenant)
        self.tenant, self.database = tenant, database

    def set_database(self, database: str) -> None:
        self.set_tenant(self.tenant, database)

    def create_tenant(self, name: str) -> None:
        self._http.call("post", "/tenants", {"name": name})

    def get_tenant(self, name: str) -> Tenant:
        return self._http.call("get", f"/tenants/{name}")

    def create_database(self, name: str, tenant: str | None = None) -> None:
        self._http.call("post", f"/tenants/{tenant or self.tenant}/databases", {"name": name})

    def get_database(self, name: str, tenant: str | None = None) -> Database:
        return self._http.call("get", f"/tenants/{tenant or self.tenant}/databases/{name}")

    def list_databases(self, limit: int | None = None, offset: int | None = None, tenant: str | None = None):
        return self._http.call(
            "get", f"/tenants/{tenant or self.tenant}/databases", limit=limit, offset=offset
        )

    def delete_database(self, name: str, tenant: str | None = None) -> None:
        self._http.call("delete", f"/tenants/{tenant or self.tenant}/databases/{name}")

    # -- collections ---------------------------------------------------------------------
    @property
    def _db(self) -> str:
        return f"/tenants/{self.tenant}/databases/{self.database}"

    def _wrap(self, model: dict[str, Any], embedding_function: Any) -> Collection:
        record = _record(model)
        stored = record["configuration"].get("embedding_function")
        ef = resolve_embedding_function(record["name"], stored, embedding_function, _DEFAULT_EF)
        engine = RemoteEngine(self._http, f"{self._db}/collections/{model['id']}")
        return Collection(self, record, engine, ef, self.tenant, self.database)  # type: ignore[arg-type]

    def create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = _DEFAULT_EF,
        data_loader: Any = None,
        get_or_create: bool = False,
    ) -> Collection:
        from lakevec.config import collection_configuration, schema_json

        schema = schema_json(schema)
        config = collection_configuration(configuration, metadata, embedding_function, schema)
        if schema is not None:  # the server takes the index settings from the schema, as Chroma's does
            config = {"embedding_function": config["embedding_function"]}
        body = {
            "name": name,
            "metadata": metadata,
            "configuration": config,
            "schema": schema,
            "get_or_create": get_or_create,
        }
        return self._wrap(self._http.call("post", self._db + "/collections", body), embedding_function)

    def get_or_create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration=None,
        metadata=None,
        embedding_function: Any = _DEFAULT_EF,
        data_loader: Any = None,
    ) -> Collection:
        return self.create_collection(
            name, schema, configuration, metadata, embedding_function, get_or_create=True
        )

    def get_collection(
        self, name: str, embedding_function: Any = _DEFAULT_EF, data_loader: Any = None
    ) -> Collection:
        return self._wrap(self._http.call("get", f"{self._db}/collections/{name}"), embedding_function)

    def list_collections(self, limit: int | None = None, offset: int | None = None) -> list[Collection]:
        models = self._http.call("get", self._db + "/collections", limit=limit, offset=offset)
        return [self._wrap(m, _DEFAULT_EF) for m in models]

    def count_collections(self) -> int:
        return int(self._http.call("get", self._db + "/collections_count"))

    def delete_collection(self, name: str) -> None:
        self._http.call("delete", f"{self._db}/collections/{name}")

    # -- called by Collection ------------------------------------------------------------
    def _check_exists(self, collection: Collection) -> None:
        """The server answers NotFoundError for a deleted collection."""

    def _modify_collection(self, collection: Collection, name, metadata, configuration) -> dict:
        body = {"new_name": name, "new_metadata": metadata, "new_configuration": configuration}
        self._http.call("put", f"{self._db}/collections/{collection.id}", body)
        return _record(self._http.call("get", f"{self._db}/collections/{name or collection.name}"))

    def _fork_collection(self, collection: Collection, new_name: str) -> Collection:
        body = {"new_name": new_name}
        model = self._http.call("post", f"{self._db}/collections/{collection.id}/fork", body)
        return self._wrap(model, collection._embedding_function)

    def _fork_count(self, collection: Collection) -> int:
        return int(self._http.call("get", f"{self._db}/collections/{collection.id}/fork_count")["count"])


def _record(model: dict[str, Any]) -> dict[str, Any]:
    """A collection record (as the local catalog holds it) from the server's collection model."""
    return {
        "id": model["id"],
        "name": model["name"],
        "metadata": model.get("metadata"),
        "configuration": model.get("configuration_json") or {},
        "schema": model.get("schema"),
    }
