"""A schema's sparse-vector indexes (Chroma 1.5's ``SparseVectorIndexConfig``): fill their keys
on writes, embed text queries over them, and say which weigh queries by idf (``bm25``)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pyarrow as pa

from lakevec.errors import InvalidArgumentError
from lakevec.extras import require
from lakevec.validate.sparse import checked_sparse_vector


def sparse_indexes(schema: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The metadata keys a schema gives an enabled sparse-vector index, with its config
    (``source_key``, ``embedding_function``, ``bm25``)."""
    out = {}
    for key, types in ((schema or {}).get("keys") or {}).items():
        index = ((types or {}).get("sparse_vector") or {}).get("sparse_vector_index") or {}
        if index.get("enabled") and not key.startswith("#"):
            out[key] = index.get("config") or {}
    return out


_SPARSE_FUNCTIONS: dict[str, Any] = {}


def sparse_embedding_function(config: dict[str, Any]) -> Any:
    """The sparse embedding function a schema's index names, built as chromadb builds it
    (``chroma_bm25`` and chromadb's other known sparse functions; needs the chroma extra)."""
    spec = config.get("embedding_function") or {}
    cache_key = json.dumps(spec, sort_keys=True)
    if cache_key not in _SPARSE_FUNCTIONS:
        require("chromadb", "a schema's sparse embedding function")
        functions = importlib.import_module("chromadb.utils.embedding_functions")
        known = functions.sparse_known_embedding_functions.get(spec.get("name"))
        if spec.get("type") != "known" or known is None:
            raise InvalidArgumentError(f"unknown sparse embedding function {spec.get('name')!r}")
        _SPARSE_FUNCTIONS[cache_key] = known.build_from_config(spec.get("config") or {})
    return _SPARSE_FUNCTIONS[cache_key]


def fill_sparse(schema: dict[str, Any] | None, metadatas: list | None, documents: Any, n: int) -> list | None:
    """Fill the schema's sparse-vector keys from their source (the document or a metadata key)
    where a row has the source and not the key, as chromadb's client does."""
    targets = {
        key: config
        for key, config in sparse_indexes(schema).items()
        if config.get("source_key") and config.get("embedding_function")
    }
    if not targets or (metadatas is None and documents is None):
        return metadatas
    docs = documents.to_pylist() if isinstance(documents, pa.Array) else documents
    rows = [dict(m) if m else {} for m in (metadatas or [None] * n)]
    for key, config in targets.items():
        source = config["source_key"]
        at = [
            i
            for i, row in enumerate(rows)
            if key not in row
            and isinstance(docs[i] if source == "#document" and docs is not None else row.get(source), str)
        ]
        if not at:
            continue
        texts = [docs[i] if source == "#document" else rows[i][source] for i in at]
        for i, vector in zip(at, sparse_embedding_function(config)(texts)):
            rows[i][key] = checked_sparse_vector(vector, f"sparse embedding of {key!r}")
    return [row or None for row in rows]


def embed_sparse_queries(schema: dict[str, Any] | None, knns: list[dict[str, Any]]) -> None:
    """Replace each text query of a ``$knn`` over a sparse key by its sparse embedding (the key's
    function's ``embed_query``), in place."""
    sparse = sparse_indexes(schema)
    for knn in knns:
        key = knn.get("key")
        if isinstance(knn.get("query"), str) and key in sparse and sparse[key].get("embedding_function"):
            function = sparse_embedding_function(sparse[key])
            embed = getattr(function, "embed_query", function)
            knn["query"] = checked_sparse_vector(
                embed([knn["query"]])[0], f"sparse query of {key!r}"
            ).to_dict()


def idf_keys(schema: dict[str, Any] | None) -> frozenset[str]:
    """The sparse keys whose queries are weighted by idf (``bm25`` in their index config)."""
    return frozenset(key for key, config in sparse_indexes(schema).items() if config.get("bm25"))
