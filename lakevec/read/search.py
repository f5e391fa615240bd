"""Nearest neighbours over one snapshot: exact over few rows, HNSW over many, merged top-k.

The plan, per index and for the unindexed tail, is a cost model over the number of rows that
pass the filter (``m``) and the size of the index (``N``), with constants measured on a 2-core
machine for 384-d float32 (see DESIGN.md):

* exact search costs about ``m * dim * EXACT_NS`` (gathering the rows and one BLAS product),
  ``GATHERED_NS`` for rows a repeated filter keeps gathered;
* a filtered HNSW search costs about ``HNSW_MS * (dim / 384) * (ef' / ef) ** 0.7`` where ``ef' = ef / p``
  for a filter keeping a share ``p`` of the index, lowered per query to the share found among
  its candidates (:class:`Plan`).

The cheaper one is taken. Every candidate is re-ranked with the stored float32 vectors, so the
distances are exact (Chroma's: l2 = squared L2, cosine = 1 - cos, ip = 1 - dot) whatever path
found them, and a row that is deleted or fails the filter is never returned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from usearch.index import Index, Indexes

from lakevec.lake.quantize import quantized
from lakevec.lake.snapshot import Group, Snapshot
from lakevec.read.routed import Found, RoutedIndex

EXACT_NS = 0.42e-6  # ms per (row x dimension): 100k x 384 exact ~ 16 ms (gather + product)
GATHERED_NS = 0.2e-6  # ... over rows a cached filter keeps gathered (100k x 384: 7.5 ms)
GATHER_BYTES = 192 << 20  # a filter's rows searched exactly are kept contiguous up to this size
GATHERED_TOTAL_BYTES = 512 << 20  # ... and every cached filter's together up to this
HNSW_MS = 0.6  # one HNSW query at ef 100 (1M x 384 int8: 0.52 ms)
HNSW_GROWTH = 0.7  # ... times (ef' / ef) ** HNSW_GROWTH deeper (1M: ef 1000 2.8 ms, 8000 9.8 ms)
SCAN_SHARE = 0.2  # a fragment with this share of its rows allowed is searched in place, whole
#: allowed candidates wanted per result (fetched: k * OVERSAMPLE / share the filter keeps);
#: 2.5 (against 1.5) took 300k clustered at a 10 % filter from recall 0.976 to 0.987
OVERSAMPLE = 2.5
RERANK = 4  # re-rank up to RERANK * k candidates from an index
RERANK_INT8 = 8  # ... and at least RERANK_INT8 * k from an int8 one
#: ... but ROUTED_RERANK * k from an index read through its route: its candidates are ranked by
#: exact int8 distances, not by a graph walk (1M clustered, 5 % of rows read: recall 0.979 at
#: 2, 3 and 8 * k; each candidate is one ranged GET on a cold remote query)
ROUTED_RERANK = 3
#: a filter whose queries found a neighbourhood at most half as dense as the filter this often
#: (a filter correlated with the vectors) first probes each query at the unfiltered depth
PROBE_AT = 0.25
PROBE_DEPTH = 4  # ... when the filter's first plan searches at least this many times deeper


@dataclass
class Hits:
    """Candidates per query: positions (nq, c) with -1 for none, exact distances (nq, c)."""

    positions: np.ndarray
    distances: np.ndarray


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-30)


def row_norms(space: str, vectors: np.ndarray) -> np.ndarray | None:
    """What :func:`exact_distances` needs of each row besides the row: |x|^2 for l2, |x| for
    cosine (one more pass over the rows, saved where the rows are searched again)."""
    if space == "l2":
        return np.einsum("ij,ij->i", vectors, vectors)
    if space == "cosine":
        return np.maximum(np.sqrt(np.einsum("ij,ij->i", vectors, vectors)), 1e-30)
    return None


def exact_distances(
    space: str, queries: np.ndarray, vectors: np.ndarray, norms: np.ndarray | None = None
) -> np.ndarray:
    """(nq, n) distances, computed the way Chroma reports them."""
    if norms is None:
        norms = row_norms(space, vectors)
    dots = queries @ vectors.T
    if norms is None:  # ip
        return 1.0 - dots
    if space == "l2":
        qn = np.einsum("ij,ij->i", queries, queries)[:, None]
        return np.maximum(qn + norms[None, :] - 2.0 * dots, 0.0)
    q = np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-30)  # cosine
    return 1.0 - dots / q / norms[None, :]


def pair_distances(space: str, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Distances of query i to each of its own candidates: queries (nq, d), vectors (nq, c, d)."""
    if space == "l2":
        diff = vectors - queries[:, None, :]
        return np.einsum("qcd,qcd->qc", diff, diff)
    if space == "cosine":
        q = normalize(queries)
        norms = np.linalg.norm(vectors, axis=2)
        return 1.0 - np.einsum("qd,qcd->qc", q, vectors) / np.maximum(norms, 1e-30)
    return 1.0 - np.einsum("qd,qcd->qc", queries, vectors)


def top_k(positions: np.ndarray, distances: np.ndarray, k: int) -> Hits:
    """Keep the k smallest distances per row (distances inf where position is -1)."""
    if distances.shape[1] > k:
        part = np.argpartition(distances, k - 1, axis=1)[:, :k]
        positions = np.take_along_axis(positions, part, axis=1)
        distances = np.take_along_axis(distances, part, axis=1)
    order = np.argsort(distances, axis=1, kind="stable")
    return Hits(np.take_along_axis(positions, order, axis=1), np.take_along_axis(distances, order, axis=1))


def exact_search(
    snap: Snapshot,
    space: str,
    queries: np.ndarray,
    positions: np.ndarray,
    k: int,
    vectors: tuple[np.ndarray, np.ndarray | None] | None = None,
) -> Hits:
    """Brute force over the given sorted rows: over ``vectors`` (theirs gathered, and their
    :func:`row_norms`) in one product, else a fragment at a time (a fragment with SCAN_SHARE of
    its rows allowed is searched in place, in blocks: gathering 200k x 384 vectors first cost
    0.5 s of copying); the winners' distances are recomputed pairwise, as every path reports them."""
    nq = len(queries)
    if len(positions) == 0:
        return Hits(np.full((nq, 0), -1, dtype=np.int64), np.zeros((nq, 0), dtype=np.float32))
    if vectors is not None:
        return _gathered_search(space, queries, positions, k, *vectors)
    parts = []
    for f, a, b in snap.runs(positions):
        frag, rows = snap.fragments[f], positions[a:b] - snap.offsets[f]
        if len(rows) >= SCAN_SHARE * frag.num_rows:  # reading it all costs less than gathering
            dist = np.empty((nq, frag.num_rows), dtype=np.float32)
            for first, block in frag.blocks():
                dist[:, first : first + len(block)] = exact_distances(space, queries, block)
            if len(rows) < frag.num_rows:
                dist = dist[:, rows]
        else:
            dist = exact_distances(space, queries, frag.take(rows))
        parts.append(top_k(np.broadcast_to(positions[a:b], dist.shape), dist, min(k, b - a)))
    return rerank(snap, space, queries, merge_hits(parts, k))


def _gathered_search(
    space: str,
    queries: np.ndarray,
    positions: np.ndarray,
    k: int,
    vectors: np.ndarray,
    norms: np.ndarray | None,
) -> Hits:
    """Brute force over rows gathered into one array: one product, the k best by partition, and
    their distances recomputed pairwise from that array (as :func:`rerank` would, without
    reading the rows again: at 1 % of 1M that second read cost a fifth of the query)."""
    dist = exact_distances(space, queries, vectors, norms)
    n = min(k, len(positions))
    if dist.shape[1] > n:
        best = np.argpartition(dist, n - 1, axis=1)[:, :n]
    else:
        best = np.broadcast_to(np.arange(n), (len(queries), n))
    exact = pair_distances(space, queries, vectors[best])
    order = np.argsort(exact, axis=1, kind="stable")
    return Hits(positions[np.take_along_axis(best, order, axis=1)], np.take_along_axis(exact, order, axis=1))


def merge_hits(parts: list[Hits], k: int) -> Hits:
    """The k best of several searches' hits per query (a position of -1 is no hit)."""
    if len(parts) == 1:
        return parts[0]
    positions = np.concatenate([p.positions for p in parts], axis=1)
    distances = np.concatenate([np.where(p.positions >= 0, p.distances, np.inf) for p in parts], axis=1)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return Hits(np.take_along_axis(positions, order, axis=1), np.take_along_axis(distances, order, axis=1))


def rerank(snap: Snapshot, space: str, queries: np.ndarray, hits: Hits) -> Hits:
    positions = hits.positions
    valid = positions >= 0
    if not valid.any():
        return hits
    padded = not valid.all()  # usually not: then nothing needs masking
    safe = np.where(valid, positions, positions[valid][0]) if padded else positions
    vectors = snap.embeddings(safe.reshape(-1)).reshape(*safe.shape, -1)
    dist = pair_distances(space, queries, vectors)
    if padded:
        dist = np.where(valid, dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")
    rows = np.arange(len(order))[:, None]
    return Hits(positions[rows, order], dist[rows, order])


def positions_of(snap: Snapshot, fragments: list[int]) -> np.ndarray:
    if not fragments:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(
        [np.arange(snap.offsets[i], snap.offsets[i + 1], dtype=np.int64) for i in fragments]
    )


def keys_to_positions(group: Group, keys: np.ndarray) -> np.ndarray:
    if group.shift is not None:
        first = group.bases[0]
        inside = (keys >= first) & (keys < first + group.rows.sum())
        return np.where(inside, keys + group.shift, -1)
    idx = np.searchsorted(group.bases, keys, side="right") - 1
    idx_c = np.maximum(idx, 0)
    within = keys - group.bases[idx_c]
    ok = (idx >= 0) & (within < group.rows[idx_c]) & (within >= 0)
    return np.where(ok, group.offsets[idx_c] + within, -1)


class Neighbourhoods:
    """How often one filter's queries of one index found the rows near them at most half as
    dense in allowed rows as the filter is over the whole index (a moving average over its last
    ~10 queries). A filter correlated with the vectors does this for most queries: a query on
    the far side of it pays a deep graph search that finds nothing before brute force answers
    it. Such a filter's queries first search at the unfiltered depth (a probe, ~1/5 of the deep
    search at a 10 % filter) and plan from what that finds."""

    def __init__(self) -> None:
        self.thin = 0.0

    @property
    def probe(self) -> bool:
        return self.thin >= PROBE_AT

    def record(self, thin: int, queries: int) -> None:
        old = 0.9**queries
        self.thin = old * self.thin + (1 - old) * thin / queries


def hnsw_search(
    snap: Snapshot,
    space: str,
    index: Index | IndexSet | RoutedIndex,
    group: Group,
    queries: np.ndarray,
    k: int,
    allowed: np.ndarray,
    matching: int,
    ef: int,
    exact: Callable[[np.ndarray], Hits] | None = None,
    seen: Neighbourhoods | None = None,
) -> Hits:
    """HNSW that filters its candidates, planned per query from the share of rows the filter
    keeps *near that query* (:class:`Plan`): first the index-wide share, then the share seen
    among the query's candidates. A query whose neighbourhood keeps fewer rows than planned is
    searched again deeper, or by ``exact`` (brute force over the allowed rows) once that is
    cheaper. ``seen`` keeps how often that happens for this filter; when it is most queries,
    each query is first probed at the unfiltered depth instead (:class:`Neighbourhoods`)."""
    total = len(index)
    nq = len(queries)
    # the caller chose the graph for this plan (prefer_exact): every query starts there
    first = Plan(total, k, matching, ef, queries.shape[1], group.scale is not None)
    keep = first.keep
    if seen is not None and seen.probe and first.ef >= PROBE_DEPTH * ef:
        first = dataclasses.replace(first, share=1.0, probe=True)
    plans = [first] * nq
    thin = 0
    probes = quantized(space, queries, group.scale, group.codec, group.projector)
    candidates = [np.zeros(0, dtype=np.int64)] * nq
    pending = list(range(nq))
    brute: list[int] = []  # queries handed to ``exact``
    while pending:
        count = max(plans[q].count for q in pending)
        depth = max(plans[q].ef for q in pending)
        if index.expansion_search != depth:
            index.expansion_search = depth
        if len(pending) == 1:
            # one query of one graph: no thread pool (its start-up costs more than the search);
            # of several (an index set), a thread per graph (4 tiers of 1M: 776 -> 1,321 QPS)
            threads = 0 if isinstance(index, IndexSet) else 1
            matches = index.search(probes[pending[0]], count, threads=threads)
            found = [matches.keys]
        else:
            matches = index.search(probes[pending], count, threads=0)
            found = [keys[:n] for keys, n in zip(matches.keys, matches.counts.tolist())]
        # a routed search ranked its candidates by exact int8 distance: fewer need re-ranking
        limit = min(keep, ROUTED_RERANK * k) if isinstance(matches, Found) else keep
        still: list[int] = []
        for q, keys in zip(pending, found):
            pos = keys_to_positions(group, keys.astype(np.int64))
            pos = pos[(pos >= 0) & allowed[np.maximum(pos, 0)]]
            candidates[q] = pos[:limit]
            if plans[q] is first:
                thin += first.thin(len(pos), len(keys))
            plan = plans[q].after(len(pos), len(keys))
            if plan is not None:
                plans[q] = plan
                (brute if plan.exact else still).append(q)
        pending = still
    if seen is not None:
        seen.record(thin, nq)
    positions = np.full((nq, keep), -1, dtype=np.int64)
    for q, pos in enumerate(candidates):
        positions[q, : len(pos)] = pos
    hits = rerank(snap, space, queries, Hits(positions, np.zeros(positions.shape, dtype=np.float32)))
    hits = Hits(hits.positions[:, :k], hits.distances[:, :k])
    if brute and exact is not None:
        brute.sort()
        hits = _replace(hits, np.array(brute), exact(queries[brute]), k)
    return hits


def _replace(hits: Hits, rows: np.ndarray, exact: Hits, k: int) -> Hits:
    """``hits`` with the answers of queries ``rows`` replaced by ``exact``'s."""
    width = max(hits.positions.shape[1], exact.positions.shape[1])
    positions = np.full((len(hits.positions), width), -1, dtype=np.int64)
    distances = np.full(positions.shape, np.inf, dtype=np.float32)
    positions[:, : hits.positions.shape[1]] = hits.positions
    distances[:, : hits.distances.shape[1]] = hits.distances
    positions[rows] = -1
    distances[rows] = np.inf
    positions[rows, : exact.positions.shape[1]] = exact.positions
    distances[rows, : exact.distances.shape[1]] = exact.distances
    return Hits(positions[:, :k], distances[:, :k])


@dataclass(frozen=True)
class Plan:
    """How deep one query searches an index of ``total`` rows of which ``matching`` pass its
    filter, given ``share``: the fraction of rows near the query that pass (at first the
    index-wide ``matching / total``). A graph search that drops the candidates a filter rejects
    keeps its recall if it explores about ``ef`` *allowed* candidates, so it runs at
    ``ef / share`` and fetches ``k * OVERSAMPLE / share`` candidates; once that costs more than
    brute force over the matching rows, the query is searched exactly instead. A ``probe``
    searches at share 1 (the unfiltered depth) only to measure the query's neighbourhood."""

    total: int
    k: int
    matching: int
    ef_search: int
    dim: int
    int8: bool
    share: float = -1.0
    probe: bool = False

    def __post_init__(self) -> None:
        if self.share < 0:
            object.__setattr__(self, "share", self.base)

    @property
    def base(self) -> float:
        """The share of the index's rows that pass the filter."""
        return max(self.matching, 1) / max(self.total, 1)

    @property
    def keep(self) -> int:
        """Allowed candidates re-ranked in float32 (int8 distances only rank roughly)."""
        pool = (RERANK_INT8 if self.int8 else RERANK) * self.k
        return min(pool, max(self.k, self.count))

    @property
    def count(self) -> int:
        # enough that about k * OVERSAMPLE pass the filter (an int8 index: RERANK_INT8 * k, its
        # re-rank pool, so a filtered query re-ranks as many allowed rows as an unfiltered one)
        want = max(OVERSAMPLE, RERANK_INT8 if self.int8 else 1) * self.k
        return min(self.total, max(self.k, math.ceil(want / self.share)))

    @property
    def ef(self) -> int:
        return min(
            max(self.total, 1), max(self.ef_search, math.ceil(self.ef_search / self.share), self.count)
        )

    @property
    def exact(self) -> bool:
        gathered = self.matching * self.dim * 4 <= GATHER_BYTES
        exact_ms = self.matching * self.dim * (GATHERED_NS if gathered else EXACT_NS)
        return exact_ms < hnsw_ms(self.dim, self.ef / self.ef_search)

    def thin(self, allowed: int, fetched: int) -> bool:
        """A search that fetched ``fetched`` candidates (not the whole index) found under half
        the filter's index-wide share of them allowed."""
        return fetched < self.total and allowed / max(fetched, 1) < self.base / 2

    def after(self, allowed: int, fetched: int) -> Plan | None:
        """The next plan once a search fetched ``fetched`` candidates of which ``allowed`` pass:
        None if the answer stands (enough allowed, from a neighbourhood at least half as
        dense in allowed rows as planned, or the whole index fetched)."""
        seen = allowed / max(fetched, 1)
        if fetched >= self.total or (allowed >= min(self.k, self.matching) and seen >= self.share / 2):
            return None
        if self.probe:  # as dense as the whole index (or denser): plan on that; sparser: deeper
            share = max(seen, self.base / 8) if self.thin(allowed, fetched) else max(seen, self.base)
            return dataclasses.replace(self, share=share, probe=False)
        deeper = dataclasses.replace(self, share=min(self.share / 2, max(seen, self.share / 8)))
        if (deeper.count, deeper.ef) == (self.count, self.ef) and not deeper.exact:
            return None  # already as deep as the index goes (a graph that returns fewer keys)
        return deeper


class IndexSet:
    """Several indexes searched in one native call (usearch ``Indexes``), for indexes whose
    keys never overlap: the tiers a collection's folds leave behind."""

    def __init__(self, members: list[Index]) -> None:
        self.members = members  # kept: the native set does not own them
        self._native = Indexes(indexes=members)
        self._size = sum(len(m) for m in members)

    def __len__(self) -> int:
        return self._size

    @property
    def expansion_search(self) -> int:
        return self.members[0].expansion_search

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        for member in self.members:
            member.expansion_search = value  # type: ignore[misc]

    def search(self, vectors: np.ndarray, count: int, threads: int = 0):
        return self._native.search(vectors, count, threads=threads)


def combined(groups: list[Group], members: list[Any]) -> tuple[Group, IndexSet | RoutedIndex] | None:
    """One group and index set standing for ``groups`` (each searched through its index in
    ``members``), if their key ranges are disjoint and their vectors enter alike; else None.
    Indexes searched through their routes (read/routed.py) join only each other."""
    routed = [m for m in members if isinstance(m, RoutedIndex)]
    if routed and len(routed) < len(members):
        return None
    if (
        len({(g.scale, g.codec, g.projection) for g in groups}) > 1
        or len({str(m.dtype) for m in members}) > 1
    ):
        return None
    spans = sorted((int(g.bases.min()), int((g.bases + g.rows).max())) for g in groups)
    if any(end > start for (_, end), (start, _) in zip(spans, spans[1:])):
        return None  # keys that restart at 0 in each index (folds before key ranges)
    bases = np.concatenate([g.bases for g in groups])
    order = np.argsort(bases, kind="stable")
    group = Group(
        "+".join(g.path for g in groups),
        [f for g in groups for f in g.fragments],
        bases[order],
        np.concatenate([g.rows for g in groups])[order],
        np.concatenate([g.offsets for g in groups])[order],
        groups[0].scale,
        groups[0].codec,
        groups[0].projection,
        groups[0].projector,
    )
    if routed:  # searched by range, as one; their copies as one index set once there
        return group, RoutedIndex.joined(routed, lambda: IndexSet([m.whole() for m in routed]))
    return group, IndexSet(members)


def hnsw_ms(dim: int, depth: float) -> float:
    """Estimated milliseconds of one HNSW search ``depth`` times as deep as ``ef_search``."""
    return HNSW_MS * (dim / 384) * max(1.0, depth) ** HNSW_GROWTH


def prefer_exact(matching: int, total: int, k: int, dim: int, ef: int, int8: bool) -> bool:
    """Brute force over the matching rows costs less than the filtered HNSW search that
    :func:`hnsw_search` would plan first."""
    return Plan(total, k, matching, ef, dim, int8).exact
