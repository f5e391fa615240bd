"""HNSW index files (usearch): how a fragment's rows become keys of an index.

One index may hold several fragments: fragment rows get keys ``index_base + row``. An index
file is immutable; extending one saves a copy under a new name, and the manifest points the
fragments at it (:mod:`lakevec.maintenance.indexer` decides when).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from usearch.index import Index, ScalarKind

from lakevec.lake.manifest import Manifest
from lakevec.lake.quantize import (
    INT8,
    PROJECTED,
    SAMPLE_ROWS,
    Projection,
    choose_projection,
    index_scale,
    quantized,
)
from lakevec.lake.route import ROUTE_BLOCK, Route, index_layout
from lakevec.lake.snapshot import Snapshot

METRICS = {"l2": "l2sq", "cosine": "cos", "ip": "ip"}
#: how an index of each usearch dtype holds a row (the ones lakevec builds)
ROW_KINDS: dict[Any, np.dtype] = {ScalarKind.I8: np.dtype(np.int8), ScalarKind.F16: np.dtype(np.float16)}
#: int8 graph vectors from QUANTIZE_MIN_DIM dimensions on: a quarter of float32's bytes and VNNI
#: distance kernels (1.6x faster build, 2x faster search than float16 at 200k x 384, the same
#: recall@10 once 8k candidates are re-ranked in float32); float16 below, where int8's 255
#: levels per dimension lose too much (32-d clustered: recall 0.94 against 1.00)
QUANTIZE_MIN_DIM = 128
#: a fold or tier of at least this many rows adds them cluster by cluster (insertion_order)
ORDER_MIN_ROWS = 4_096
#: rows per cluster of insertion_order: 1M rows in 256 clusters instead of 1,000 lost recall
#: (0.973 -> 0.927); the assignment costs n x n / ORDER_CLUSTER_ROWS distances (~8 s at 1M)
ORDER_CLUSTER_ROWS = 1_000
#: a new index of at least this many rows may project them (lake/quantize.py): fewer leave too
#: small a sample to choose axes from
PROJECT_MIN_ROWS = 4_096
SAMPLE_FRAGMENTS = 4  # ... a sample read from this many of the new index's fragments at most
#: an index of at least this many rows gets a route file (lake/route.py): 131,072 x 384 int8
#: rows are 50 MB, which a remote reader copies in well under a second
ROUTE_MIN_ROWS = 131_072
#: ... if its blocks are tight: their rows' squared distances to the block's mean sum to at
#: most this share of their distances to the index's mean (about 1 for rows in row order)
ROUTE_MAX_SPREAD = 0.8


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


@dataclass(frozen=True)
class Encoding:
    """How rows enter an index (``FragmentEntry.index_scale``, ``index_codec`` and
    ``index_projection``): scale None for a float16 index; ``projector`` the loaded projection,
    ``projection`` its file (None while a new one is not saved yet)."""

    scale: float | None = None
    codec: str | None = None
    projection: str | None = None
    projector: Projection | None = field(default=None, compare=False)

    def entered(self, space: str, vectors: np.ndarray) -> np.ndarray:
        return quantized(space, vectors, self.scale, self.codec, self.projector)


def new_index(dim: int, hnsw: dict[str, Any], encoding: Encoding | None = None) -> Index:
    projector = encoding.projector if encoding is not None else None
    return Index(
        ndim=projector.dims if projector is not None else dim,
        # projected rows of any space are compared by l2 (lake/quantize.py)
        metric=METRICS["l2" if projector is not None else hnsw["space"]],
        dtype=index_dtype(dim, hnsw["space"]),
        connectivity=hnsw["max_neighbors"],
        expansion_add=hnsw["ef_construction"],
        expansion_search=hnsw["ef_search"],
    )


def index_encoding(snap: Snapshot, tail: list[int]) -> Encoding:
    """How rows of the fragments ``tail`` enter a new index of the collection. An int8 index
    projects them on the axes the collection's newest projected index uses while those keep
    REUSE_VARIANCE of the new rows' variance (one query vector fits all such indexes), else on
    new axes (:func:`choose_projection`) when the rows are many and the axes hold most of their
    variance. Others take the collection's int8 scale, else one from the tail's first rows; a
    float16 index neither."""
    manifest = snap.manifest
    space = manifest.config["hnsw"]["space"]
    if index_dtype(manifest.dimension or 0, space) != "i8":
        return Encoding()
    newest = next((e for e in reversed(manifest.fragments) if e.index_codec == PROJECTED), None)
    many = sum(manifest.fragments[i].live_rows for i in tail) >= PROJECT_MIN_ROWS
    sample = tail_sample(snap, tail) if newest is not None or many else None
    if newest is not None and newest.index_projection is not None and sample is not None:
        projector = snap.projection(newest.index_projection)
        if projector is not None and projector.keeps(sample):
            return Encoding(newest.index_scale, PROJECTED, newest.index_projection, projector)
    if many and sample is not None:
        projector = choose_projection(space, sample)
        if projector is not None:
            return Encoding(index_scale("l2", projector.apply(sample)), PROJECTED, None, projector)
    scales = [
        e.index_scale for e in manifest.fragments if e.index_scale is not None and e.index_codec != PROJECTED
    ]
    return Encoding(scales[-1] if scales else index_scale(space, live_vectors(snap, tail[0])[1]), INT8)


def fits(snap: Snapshot, tail: list[int], encoding: Encoding) -> bool:
    """Whether the rows of ``tail`` may join an index of ``encoding``: its axes, if it has
    any, keep most of their variance (:meth:`Projection.keeps`)."""
    return encoding.projector is None or encoding.projector.keeps(tail_sample(snap, tail))


def tail_sample(snap: Snapshot, tail: list[int]) -> np.ndarray:
    """Up to SAMPLE_ROWS live vectors of the fragments ``tail``, from SAMPLE_FRAGMENTS of them
    spread over it."""
    picked = [tail[int(i)] for i in np.unique(np.linspace(0, len(tail) - 1, SAMPLE_FRAGMENTS).astype(int))]
    parts = [live_vectors(snap, i)[1] for i in picked]
    rows = sum(len(p) for p in parts)
    step = max(1, rows // SAMPLE_ROWS)
    return np.concatenate([p[::step] for p in parts]) if parts else np.zeros((0, 0), dtype=np.float32)


def live_vectors(snap: Snapshot, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The live rows of fragment ``i`` and their vectors (contiguous, as usearch wants them)."""
    entry, frag = snap.manifest.fragments[i], snap.fragments[i]
    rows, dead = np.arange(entry.rows, dtype=np.int64), snap.dead[i]
    if dead is not None:
        rows = np.setdiff1d(rows, dead)
    return rows, frag.read_once(rows)


def gather_tail(
    snap: Snapshot, tail: list[int], key: int, encoding: Encoding
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The live rows of fragments ``tail`` as one index takes them: their keys (from ``key`` on,
    fragment after fragment), their vectors as the index enters them (int8, or float16 for a
    float16 index: half of float32's memory), and each fragment's base key."""
    manifest = snap.manifest
    space = manifest.config["hnsw"]["space"]
    total = sum(manifest.fragments[i].rows for i in tail)  # live rows are fewer
    keys = np.empty(total, dtype=np.int64)
    kind = np.int8 if encoding.scale is not None and encoding.codec in (INT8, PROJECTED) else np.float16
    dims = encoding.projector.dims if encoding.projector is not None else manifest.dimension or 0
    vectors = np.empty((total, dims), dtype=kind)
    bases: dict[str, int] = {}
    at = 0
    for i in tail:
        entry = manifest.fragments[i]
        rows, part = live_vectors(snap, i)
        keys[at : at + len(rows)] = key + rows
        vectors[at : at + len(rows)] = encoding.entered(space, part)
        at += len(rows)
        bases[entry.id] = key
        key += entry.rows
    return keys[:at], vectors[:at], bases


def insertion_order(
    vectors: np.ndarray, min_rows: int | None = None, cluster_rows: int = ORDER_CLUSTER_ROWS
) -> np.ndarray:
    """The order to add ``vectors`` to a graph in: rows of one cluster (their nearest of ~n/1000
    centroids, k-means on a sample) one after another. usearch lays nodes out in the order they
    come, so each insert searches memory that the inserts before it brought into cache. On 1M
    clustered x 384 (int8, 2 cores) the graph builds in 105 s instead of 218 s, at recall@10 0.970
    against 0.978; 50k real text embeddings and 200k structureless vectors build and search as
    in row order (``benchmarks/build_options.py``, option 8, and a scratch script)."""
    n = len(vectors)
    if n < (ORDER_MIN_ROWS if min_rows is None else min_rows):
        return np.arange(n)
    return np.argsort(_nearest(vectors, centroids(vectors, cluster_rows)), kind="stable")


def striped(order: np.ndarray, threads: int) -> np.ndarray:
    """``order`` dealt out so that usearch's ``threads`` (each takes a contiguous slice of one
    add call) insert its rows in step: thread t takes ``order[t::threads]``. The graph's slots
    then follow ``order`` instead of interleaving the slices, so a block of slots holds near
    rows (what a route's blocks need: lake/route.py)."""
    threads = threads or os.cpu_count() or 1
    if threads <= 1 or len(order) <= threads:
        return order
    return np.concatenate([order[t::threads] for t in range(threads)])


def centroids(vectors: np.ndarray, cluster_rows: int = ORDER_CLUSTER_ROWS) -> np.ndarray:
    """~n / ``cluster_rows`` float32 centroids of ``vectors``: a few k-means steps on a sample
    (the order and the route only need near rows together, not the best clusters)."""
    n = len(vectors)
    rng = np.random.default_rng(0)
    k = min(n, max(16, n // cluster_rows))
    sample = vectors[np.sort(rng.choice(n, min(n, 50 * k), replace=False))].astype(np.float32)
    out = sample[rng.choice(len(sample), k, replace=False)]
    for _ in range(3):
        labels = _nearest(sample, out)
        order = np.argsort(labels, kind="stable")
        used, starts = np.unique(labels[order], return_index=True)
        sums = np.add.reduceat(sample[order], starts, axis=0)
        out[used] = sums / np.diff(np.append(starts, len(sample)))[:, None]
    return out


def _nearest(vectors: np.ndarray, centroids: np.ndarray, chunk: int = 8_192) -> np.ndarray:
    """Each row's nearest centroid (l2), in float32 chunks of rows (a chunk's distances to 2,000
    centroids are 64 MB, computed in place)."""
    norms = (centroids**2).sum(axis=1)
    out = np.empty(len(vectors), dtype=np.int32)
    for a in range(0, len(vectors), chunk):
        d = vectors[a : a + chunk].astype(np.float32, copy=False) @ centroids.T
        d *= -2
        d += norms
        out[a : a + chunk] = np.argmin(d, axis=1)
    return out


def index_route(data: bytes | memoryview, dtype: np.dtype) -> Route | None:
    """The route of a saved index (``lake/route.py``), or None where it would not pay: an
    index under ROUTE_MIN_ROWS rows (copied whole in well under a second), a file laid out as
    this code does not know, or blocks no tighter than the index as a whole (rows added in
    row order: no block's mean tells where its rows are)."""
    if len(data) < 8 or int(np.frombuffer(data, dtype=np.uint32, count=1)[0]) < ROUTE_MIN_ROWS:
        return None  # the row count leads the file: no need to parse a small index
    try:
        layout = index_layout(data)
    except ValueError:
        return None
    size = np.dtype(dtype).itemsize
    dim = layout.row_bytes // size
    if dim * size != layout.row_bytes:
        return None
    rows = np.frombuffer(data, dtype=dtype, count=layout.rows * dim, offset=layout.offset)
    rows = rows.reshape(layout.rows, dim)
    counts = np.diff(np.append(np.arange(0, layout.rows, ROUTE_BLOCK), layout.rows))
    means = np.empty((len(counts), dim), dtype=np.float32)
    within = 0.0  # squared distances of rows to their block's mean
    step = 256 * ROUTE_BLOCK  # rows converted to float32 at a time (25 MB at 384-d)
    for a in range(0, layout.rows, step):
        part = rows[a : a + step].astype(np.float32)
        first, n = a // ROUTE_BLOCK, counts[a // ROUTE_BLOCK : (a + step) // ROUTE_BLOCK]
        means[first : first + len(n)] = np.add.reduceat(part, np.arange(0, len(part), ROUTE_BLOCK), axis=0)
        means[first : first + len(n)] /= n[:, None]
        part -= np.repeat(means[first : first + len(n)], n, axis=0)
        within += float(np.einsum("ij,ij->", part, part))
    centre = counts @ means / layout.rows
    between = float(counts @ ((means - centre) ** 2).sum(axis=1))
    if within > ROUTE_MAX_SPREAD * (within + between):
        return None
    if np.dtype(dtype) == np.int8:
        means = np.rint(means)
    keys = layout.keys
    if len(keys) and keys.max() <= np.iinfo(np.uint32).max:
        keys = keys.astype(np.uint32)  # half the bytes a cold reader fetches
    return Route(means.astype(dtype), keys, layout.offset, layout.row_bytes, ROUTE_BLOCK)
