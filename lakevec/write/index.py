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
INDEX_DTYPE = "f16"  # half the bytes, same recall; distances are re-ranked in float32


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
        dtype=INDEX_DTYPE,
        connectivity=hnsw["max_neighbors"],
        expansion_add=hnsw["ef_construction"],
        expansion_search=hnsw["ef_search"],
    )
