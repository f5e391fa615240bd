"""Batch queries fanned out over a collection's shards (its indexes and its unindexed rows).

Every shard is searched at one pinned version and returns its own top k with exact distances;
the driver merges them and reads the winning rows once. ``engine="local"`` runs the same
shards one after another in this process, so both engines return the same result.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from lakevec import validate as v
from lakevec.errors import InvalidArgumentError
from lakevec.interop import QueryResult
from lakevec.ray.target import Target
from lakevec.read.query import query_result, shards
from lakevec.read.search import Hits, merge_hits

DEFAULT_INCLUDE = ["metadatas", "documents", "distances"]
_PINNED: dict[Target, Any] = {}
_PINNED_LOCK = threading.Lock()


def _pinned_engine(target: Target, version: int) -> Any:
    """A read-only engine over ``version``, kept per collection and process until a batch asks
    for another version (its snapshot and indexes stay open between batches)."""
    with _PINNED_LOCK:
        engine = _PINNED.get(target)
        if engine is None or engine.pinned_version != version:
            engine = _PINNED[target] = target.collection()._engine.pinned(version)
        return engine


def _search_shard(target: Target, version: int, queries: np.ndarray, k: int, filters: dict, shard) -> Hits:
    return _pinned_engine(target, version).query_shard(queries, k, shard=shard, **filters)


def query_batch(
    collection: Any,
    queries: Any,
    k: int = 10,
    *,
    where: dict | None = None,
    where_document: dict | None = None,
    include: list[str] | None = None,
    engine: str = "local",
) -> QueryResult:
    """The ``k`` nearest rows to each of ``queries`` (embeddings) that pass the filters, as
    ``collection.query`` returns them; ``engine="ray"`` searches each shard in a Ray task."""
    if engine not in ("local", "ray"):
        raise InvalidArgumentError(f"engine must be 'local' or 'ray', got {engine!r}")
    k = v.validate_n_results(k)
    include = v.validate_include(DEFAULT_INCLUDE if include is None else include, allow_distances=True)
    v.validate_filters(None, where, where_document, None)
    queries = np.ascontiguousarray(np.asarray(queries, dtype=np.float32))
    if queries.ndim == 1:
        queries = queries[None, :]
    version = collection.version
    target = Target.of(collection)
    pinned = _pinned_engine(target, version)  # the engine Ray tasks use in their processes
    snap = pinned.snapshot()
    filters = {
        "where": where or None,
        "where_document": where_document or None,
        "hnsw": collection.configuration["hnsw"],
    }
    parts = shards(snap)
    if engine == "local" or not parts:
        hits = [pinned.query_shard(queries, k, shard=s, **filters) for s in parts]
    else:
        import ray

        task = ray.remote(_search_shard)
        shared = ray.put(queries)
        hits = ray.get([task.remote(target, version, shared, k, filters, s) for s in parts])
    if not hits:
        hits = [pinned.query_shard(queries, k, shard=None, **filters)]
    return QueryResult(query_result(snap, merge_hits(hits, k), include))
