"""Knn over a sparse-vector metadata key: exact ``1 - query . row`` over the snapshot's live rows.

Chroma's scoring: every live row that holds a sparse vector under the key is a candidate
(rows without one drop out), lower first. With the key's ``bm25`` flag (Chroma's sparse index
config), the query's weights are first multiplied by each index's idf over the snapshot,
``ln(1 + (n - n_t + 0.5) / (n_t + 0.5))`` with ``n`` the live rows and ``n_t`` those whose vector
holds index ``t`` -- what Chroma's BM25 embedding function expects, since it stores only the
term-frequency part. Each fragment's column is read as flat Arrow buffers and scored in one
numpy pass (no per-row Python).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lakevec.lake.schema import META_PREFIX, numbers
from lakevec.lake.snapshot import Snapshot


def _flat(struct: pa.StructArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row of each entry, index, value) of a fragment's sparse column; null rows hold none."""
    valid = struct.is_valid()
    rows_with = np.flatnonzero(numbers(valid))
    if struct.null_count:
        struct = struct.filter(valid)
    indices, values = struct.field("indices"), struct.field("values")
    sizes = numbers(indices.value_lengths().fill_null(0)).astype(np.int64)
    return np.repeat(rows_with, sizes), numbers(indices.flatten()), numbers(values.flatten())


def _fragment_entries(snap: Snapshot, key: str, i: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The sparse entries of fragment ``i`` under ``key`` (rows relative to the fragment)."""
    table = snap.fragments[i].table
    out = []
    for f in snap.manifest.fields:
        name = META_PREFIX + f.name
        if f.key != key or f.kind != "sparse" or name not in table.column_names:
            continue
        column = table.column(name)
        if column.null_count < len(column):
            out.append(_flat(column.combine_chunks()))
    return out


def sparse_top(
    snap: Snapshot,
    key: str,
    indices: np.ndarray,
    weights: np.ndarray,
    limit: int,
    allowed: np.ndarray | None,
    idf: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``limit`` best rows (positions, scores ``1 - dot``), best first; ties by position."""
    live = snap.live if allowed is None else snap.live & allowed
    entries = [(i, part) for i in range(len(snap.fragments)) for part in _fragment_entries(snap, key, i)]
    weights = weights.astype(np.float64)
    if idf:
        n_t = np.zeros(len(indices), np.int64)
        for i, (rows, idx, _) in entries:
            alive = snap.live[snap.offsets[i] + rows]
            n_t += np.bincount(
                np.searchsorted(indices, idx[alive & np.isin(idx, indices)]), minlength=len(indices)
            )
        n = int(np.count_nonzero(snap.live))
        weights = weights * np.log1p((n - n_t + 0.5) / (n_t + 0.5))
    positions, scores = [], []
    for i, (rows, idx, val) in entries:
        positions_i = snap.offsets[i] + rows
        holders = np.unique(positions_i[live[positions_i]])
        if not len(holders):
            continue
        hit = np.isin(idx, indices) & live[positions_i]
        dot: np.ndarray = np.zeros(len(holders), np.float64)
        if hit.any():
            term = np.searchsorted(indices, idx[hit])
            at = np.searchsorted(holders, positions_i[hit])
            dot = np.bincount(at, weights=val[hit].astype(np.float64) * weights[term], minlength=len(holders))
        positions.append(holders)
        scores.append(1.0 - dot)
    if not positions:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    position, score = np.concatenate(positions), np.concatenate(scores).astype(np.float32)
    if len(position) > limit:  # keep every row tied with the last one: ties go by position
        keep = score <= np.partition(score, limit - 1)[limit - 1]
        position, score = position[keep], score[keep]
    order = np.lexsort((position, score))[:limit]
    return position[order], score[order]
