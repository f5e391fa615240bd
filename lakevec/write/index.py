"""HNSW index files (usearch): how a fragment's rows become keys of an index.

One index may hold several fragments: fragment rows get keys ``index_base + row``. An index
file is immutable; extending one saves a copy under a new name, and the manifest points the
fragments at it (:mod:`lakevec.maintenance.indexer` decides when).
"""

from __future__ import annotations

from typing import Any

from usearch.index import Index

from lakevec.lake.manifest import Manifest

METRICS = {"l2": "l2sq", "cosine": "cos", "ip": "ip"}
#: int8 graph vectors from QUANTIZE_MIN_DIM dimensions on: a quarter of float32's bytes and VNNI
#: distance kernels (1.6x faster build, 2x faster search than float16 at 200k x 384, the same
#: recall@10 once 8k candidates are re-ranked in float32); float16 below, where int8's 255
#: levels per dimension lose too much (32-d clustered: recall 0.94 against 1.00)
QUANTIZE_MIN_DIM = 128


def index_dtype(dim: int, space: str) -> str:
    # usearch's int8 inner product ranks as cosine does (1.00 -> 0.85 recall on unnormalized
    # vectors), so ip indexes stay float16
    return "i8" if dim >= QUANTIZE_MIN_DIM and space != "ip" else "f16"


def index_rows(manifest: Manifest) -> dict[str, int]:
    """Rows (keys) of each index of the manifest."""
    rows: dict[str, int] = {}
    for e in manifest.fragments:
        if e.index:
            rows[e.index] = rows.get(e.index, 0) + e.rows
    return rows


def new_index(dim: int, hnsw: dict[str, Any]) -> Index:
    return Index(
        ndim=dim,
        metric=METRICS[hnsw["space"]],
        dtype=index_dtype(dim, hnsw["space"]),
        connectivity=hnsw["max_neighbors"],
        expansion_add=hnsw["ef_construction"],
        expansion_search=hnsw["ef_search"],
    )
