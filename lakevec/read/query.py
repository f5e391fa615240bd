"""``query``: snapshot -> filter -> search (per index and the exact tail) -> merge -> rows."""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from usearch.index import Index

from lakevec.lake.schema import dicts_from_columns
from lakevec.lake.snapshot import Group, Snapshot
from lakevec.read.mask import arrow_evaluable, where_mask
from lakevec.read.routed import RoutedIndex
from lakevec.read.rows import select
from lakevec.read.search import (
    GATHER_BYTES,
    GATHERED_TOTAL_BYTES,
    Hits,
    IndexSet,
    Neighbourhoods,
    combined,
    exact_search,
    hnsw_search,
    merge_hits,
    positions_of,
    prefer_exact,
    row_norms,
)

if TYPE_CHECKING:
    import duckdb


class Allowed:
    """Rows a query may return: a bitmap over positions, its count per fragment, and (for a
    filter) the sorted positions. A filter cached for repeated queries also keeps the vectors
    of its rows that are searched exactly, gathered once into one array: gathering 10k rows
    scattered over 1M costs more than the search over them."""

    def __init__(
        self, mask: np.ndarray, per_fragment: np.ndarray, positions: np.ndarray | None = None
    ) -> None:
        self.mask = mask
        self.per_fragment = per_fragment
        self.positions = positions
        self._gathered: tuple[tuple, tuple[np.ndarray, np.ndarray | None]] | None = None
        self._lock = threading.Lock()
        self.neighbourhoods: dict[str, Neighbourhoods] = {}  # per index searched (its path)
        self._exact_rows: tuple[tuple[int, ...], np.ndarray] | None = None

    def exact_rows(self, snap: Snapshot, fragments: list[int]) -> np.ndarray:
        """Sorted positions of the allowed rows of ``fragments``."""
        if self.positions is None:  # every live row: the fragments' live rows
            rows = positions_of(snap, fragments)
            return rows[self.mask[rows]]
        key = tuple(fragments)
        last = self._exact_rows  # a local: another thread may replace it
        if last is not None and last[0] == key:
            return last[1]  # a repeated filter asks for the same fragments' rows every query
        wanted = set(fragments)
        every = snap.runs(self.positions)
        runs = [(a, b) for f, a, b in every if f in wanted]
        if len(runs) == len(every):
            rows = self.positions
        else:
            rows = np.concatenate([self.positions[a:b] for a, b in runs]) if runs else self.positions[:0]
        self._exact_rows = (key, rows)
        return rows

    def gathered(
        self, snap: Snapshot, space: str, fragments: list[int], rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None] | None:
        """The vectors of ``rows`` (from :meth:`exact_rows`) as one array with their norms,
        kept for the next query with this filter; None for every-live-row views and rows past
        GATHER_BYTES."""
        if self.positions is None or len(rows) * (snap.manifest.dimension or 0) * 4 > GATHER_BYTES:
            return None
        key = (space, tuple(fragments))
        with self._lock:
            # a local: the budget may drop self._gathered from another thread at any time
            current = self._gathered
            if current is None or current[0] != key:
                vectors = snap.embeddings(rows)
                current = (key, (vectors, row_norms(space, vectors)))
                self._gathered = current
                _GATHERED.keep(self, vectors.nbytes)
            return current[1]


class _GatheredBudget:
    """Gathered vectors across every cached filter stay under GATHERED_TOTAL_BYTES: the
    least recently gathered ones are dropped first (gathered again if their filter returns)."""

    def __init__(self) -> None:
        self._items: OrderedDict[int, tuple[weakref.ref[Allowed], int]] = OrderedDict()
        self._lock = threading.Lock()

    def keep(self, allowed: Allowed, nbytes: int) -> None:
        with self._lock:
            for gone in [key for key, (ref, _) in self._items.items() if ref() is None]:
                del self._items[gone]  # a filter evicted from its cache holds nothing any more
            self._items.pop(id(allowed), None)
            self._items[id(allowed)] = (weakref.ref(allowed), nbytes)
            total = sum(n for _, n in self._items.values())
            while total > GATHERED_TOTAL_BYTES and len(self._items) > 1:
                _, (ref, n) = self._items.popitem(last=False)
                total -= n
                old = ref()
                if old is not None and old is not allowed:
                    old._gathered = None


_GATHERED = _GatheredBudget()


class FilterCache:
    """Row bitmaps (live and passing the filter) per snapshot version and filter."""

    def __init__(self, size: int = 16) -> None:
        self._items: OrderedDict[tuple, Allowed] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def allowed(
        self,
        snap: Snapshot,
        con: Callable[[], duckdb.DuckDBPyConnection],
        ids,
        where,
        where_document,
        where_sql=None,
    ) -> Allowed:
        """``con`` opens the DuckDB connection, which only filters that Arrow cannot evaluate need."""
        if ids is None and not where and not where_document and not where_sql:
            live = np.array([e.live_rows for e in snap.manifest.fragments], dtype=np.int64)
            return Allowed(snap.live, live)
        key = (
            snap.version,
            None if ids is None else tuple(ids),
            json.dumps(where, sort_keys=True),
            json.dumps(where_document, sort_keys=True),
            where_sql,
        )
        with self._lock:
            cached = self._items.get(key)
            if cached is not None:
                self._items.move_to_end(key)
                return cached
        if ids is None and not where_document and not where_sql and arrow_evaluable(where):
            mask = where_mask(snap.metadata_table, snap.manifest.fields, where) & snap.live
            positions = np.flatnonzero(mask)
        else:
            positions = select(
                snap,
                con(),
                ids=ids,
                where=where,
                where_document=where_document,
                where_sql=where_sql,
                ordered=False,
            )
            mask = np.zeros(len(snap.live), dtype=bool)
            mask[positions] = True
            positions = np.flatnonzero(mask)
        counts = np.bincount(snap.locate(positions)[0], minlength=len(snap.fragments))
        allowed = Allowed(mask, counts, positions)
        with self._lock:
            self._items[key] = allowed
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return allowed


_COMBINED: OrderedDict[tuple, tuple[Snapshot, tuple[Group, IndexSet | RoutedIndex] | None]] = OrderedDict()
_COMBINED_LOCK = threading.Lock()


def _combined(
    snap: Snapshot, chosen: list[tuple[Group, Index, int]]
) -> tuple[Group, IndexSet | RoutedIndex] | None:
    """:func:`combined` for a snapshot's chosen indexes, built once and kept (LRU of 8)."""
    key = (id(snap), snap.version, tuple(id(index) for _, index, _ in chosen))
    with _COMBINED_LOCK:
        hit = _COMBINED.get(key)
        if hit is not None and hit[0] is snap:
            _COMBINED.move_to_end(key)
            return hit[1]
    value = combined([g for g, _, _ in chosen], [index for _, index, _ in chosen])
    with _COMBINED_LOCK:
        _COMBINED[key] = (snap, value)
        while len(_COMBINED) > 8:
            _COMBINED.popitem(last=False)
    return value


def search(
    snap: Snapshot,
    indexes: dict[str, Index],
    queries: np.ndarray,
    k: int,
    allowed: Allowed,
    hnsw: dict[str, Any],
    shard: frozenset[str] | None = None,
) -> Hits:
    """The k nearest allowed rows for each query, across every index and the unindexed tail;
    with ``shard`` (index paths and unindexed fragment ids, see :func:`shards`) across those
    only, so that searches of the shards merge into the whole search."""
    space, ef, dim = hnsw["space"], hnsw["ef_search"], queries.shape[1]
    groups, tail = snap.search_groups
    if shard is not None:
        groups = [g for g in groups if g.path in shard]
        tail = [i for i in tail if snap.manifest.fragments[i].id in shard]
    parts: list[Hits] = []
    exact_fragments = [i for i in tail if allowed.per_fragment[i]]
    chosen: list[tuple[Group, Index, int]] = []
    for group in groups:
        matching = int(allowed.per_fragment[group.fragments].sum())
        if matching == 0:
            continue
        index = indexes.get(group.path)
        if index is None or prefer_exact(matching, len(index), k, dim, ef, group.scale is not None):
            exact_fragments += [i for i in group.fragments if allowed.per_fragment[i]]
        else:
            chosen.append((group, index, matching))
    together = _combined(snap, chosen) if len(chosen) > 1 else None
    if together is not None:
        group, index_set = together
        matching = sum(m for _, _, m in chosen)
        parts.append(_hnsw(snap, space, index_set, group, queries, k, allowed, matching, ef))
    else:
        for group, index, matching in chosen:
            parts.append(_hnsw(snap, space, index, group, queries, k, allowed, matching, ef))
    exact_fragments.sort()
    exact = allowed.exact_rows(snap, exact_fragments)
    if len(exact):
        vectors = allowed.gathered(snap, space, exact_fragments, exact)
        parts.append(exact_search(snap, space, queries, exact, k, vectors))
    if not parts:
        return Hits(
            np.full((len(queries), 0), -1, dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
        )
    return merge_hits(parts, k)


def shards(snap: Snapshot) -> list[frozenset[str]]:
    """The parts of a search that can run apart (in other processes): each index, and the
    unindexed fragments together."""
    groups, tail = snap.search_groups
    out = [frozenset([g.path]) for g in groups]
    if tail:
        out.append(frozenset(snap.manifest.fragments[i].id for i in tail))
    return out


def _hnsw(
    snap: Snapshot,
    space: str,
    index: Index | IndexSet | RoutedIndex,
    group: Group,
    queries: np.ndarray,
    k: int,
    allowed: Allowed,
    matching: int,
    ef: int,
) -> Hits:
    """:func:`hnsw_search` of one index (or index set), with brute force over the group's
    allowed rows for the queries whose neighbourhood the filter leaves too thin."""

    def exact(some: np.ndarray) -> Hits:
        fragments = sorted(group.fragments)
        rows = allowed.exact_rows(snap, fragments)
        return exact_search(snap, space, some, rows, k, allowed.gathered(snap, space, fragments, rows))

    seen = allowed.neighbourhoods.setdefault(group.path, Neighbourhoods())
    return hnsw_search(snap, space, index, group, queries, k, allowed.mask, matching, ef, exact, seen)


def query_result(snap: Snapshot, hits: Hits, include: list[str]) -> dict[str, Any]:
    """Chroma's ``QueryResult``: one list per query; only included columns are materialized."""
    valid = (hits.positions >= 0) & np.isfinite(hits.distances)
    counts = valid.sum(axis=1)
    flat = hits.positions[valid]
    columns = ["id"] + [c for c, name in (("document", "documents"), ("uri", "uris")) if name in include]
    if "metadatas" in include:
        columns += snap.metadata_columns()
    values = snap.values(flat, columns)
    splits = np.cumsum(counts)[:-1]

    def per_query(items: list) -> list[list]:
        out, start = [], 0
        for n in counts:
            out.append(items[start : start + n])
            start += n
        return out

    embeddings = None
    if "embeddings" in include:
        embeddings = (
            list(np.split(snap.embeddings(flat), splits))
            if len(flat)
            else [np.zeros((0, snap.manifest.dimension or 0), np.float32) for _ in counts]
        )
    return {
        "ids": per_query(values["id"]),
        "embeddings": embeddings,
        "documents": per_query(values["document"]) if "documents" in include else None,
        "uris": per_query(values["uri"]) if "uris" in include else None,
        "included": list(include),
        "data": None,
        "metadatas": per_query(dicts_from_columns(values, snap.manifest.fields, len(flat)))
        if "metadatas" in include
        else None,
        "distances": per_query(hits.distances[valid].astype(float).tolist())
        if "distances" in include
        else None,
    }
