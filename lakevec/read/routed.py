"""Search remote indexes before their copies have arrived, through their route files
(``lake/route.py``).

A cold process on an object store would otherwise wait for whole index files (532 MB at
1M x 384) before its first query. :class:`RoutedIndex` answers ``search`` as usearch's index
does, from the blocks of rows whose means lie nearest each query: it reads those blocks by
range (blocks a few apart as one read, all side by side), ranks their rows exactly in the
index's own values, and returns the best keys. Their float32 re-rank then runs as for any
index (``read/search.py``). Once the copy is in the cache, the engine searches the real index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from usearch.index import MetricKind
from usearch.index import search as exact_search

from lakevec.lake.route import Route
from lakevec.lake.vectors import ReadRanges

#: rows ranked per query: ROUTE_SHARE of the index's rows at ef_search 100 (in proportion
#: to ef_search), at least ROUTE_ROWS. On one 1M clustered x 384 index, after the float32
#: re-rank of 80 candidates, recall@10 was 0.809 / 0.959 / 0.987 at 1.6 / 3.1 / 6.25 % of its
#: rows (``python -m benchmarks routed``, 2026-12-06)
ROUTE_SHARE = 0.05
ROUTE_ROWS = 16_384
#: chosen blocks of one file at most this many bytes apart are read as one range: a request
#: costs more than the bytes between (a local S3 server: ~6 ms of its time per request, ~1 ms
#: per MB; S3: tens of ms to the first byte)
ROUTE_GAP_BYTES = 1 << 20
#: a search that would read more than this share of the rows waits for the copies instead
ROUTE_MAX_SHARE = 0.25


@dataclass
class Found:
    """What :meth:`RoutedIndex.search` returns, shaped as usearch's matches: ``keys`` of one
    query, or (nq, count) keys and each query's ``counts``."""

    keys: np.ndarray
    counts: np.ndarray | None = None


class RoutedIndex:
    """Index files on an object store (one, or several whose keys never overlap), searched
    through their routes until their copies arrive."""

    def __init__(
        self,
        parts: list[tuple[Route, str]],
        read: ReadRanges,
        space: str,
        dtype: np.dtype,
        expansion_search: int,
        whole: Callable[[], Any],
    ) -> None:
        self.parts = parts  # (route, path of the index file)
        self.read = read
        self.space = space
        self.kind = np.dtype(dtype)
        self.expansion_search = expansion_search
        self.whole = whole  # the real index (or index set), once copied: blocks until it is
        self.block = parts[0][0].block
        self.means = np.concatenate([r.means for r, _ in parts]).astype(np.float32)
        self._mean_norms = np.einsum("ij,ij->i", self.means, self.means)
        blocks = [len(r.means) for r, _ in parts]
        self._part = np.repeat(np.arange(len(parts)), blocks)  # each block's part
        self._first = np.concatenate(([0], np.cumsum(blocks)))  # each part's first block
        self._size = sum(len(r.keys) for r, _ in parts)

    @staticmethod
    def joined(members: list[RoutedIndex], whole: Callable[[], Any]) -> RoutedIndex:
        first = members[0]
        parts = [part for m in members for part in m.parts]
        return RoutedIndex(parts, first.read, first.space, first.kind, first.expansion_search, whole)

    def __len__(self) -> int:
        return self._size

    @property
    def dtype(self) -> np.dtype:
        return self.kind

    def search(self, vectors: np.ndarray, count: int, threads: int = 0) -> Any:
        single = vectors.ndim == 1
        queries = np.atleast_2d(vectors).astype(np.float32)  # to rank the blocks' means
        share = ROUTE_SHARE * self.expansion_search / 100
        want = min(self._size, max(ROUTE_ROWS, int(share * self._size), 4 * count))
        chosen = [self._nearest_blocks(q, want) for q in queries]
        needed = np.unique(np.concatenate(chosen))
        if min(len(needed) * self.block, self._size) > ROUTE_MAX_SHARE * self._size:
            index = self.whole()
            index.expansion_search = self.expansion_search
            return index.search(vectors, count, threads=threads)
        rows, keys = self._read_blocks(needed)
        out = np.zeros((len(queries), count), dtype=np.uint64)
        counts = np.zeros(len(queries), dtype=np.int64)
        native = np.atleast_2d(vectors).astype(self.kind, copy=False)
        for q, mine in enumerate(chosen):
            at = np.searchsorted(needed, mine)
            picked = (at[:, None] * self.block + np.arange(self.block)).reshape(-1)
            picked = picked[keys[picked] != _NONE]  # the short last block of a file
            # usearch's exact kernels rank rows in the index's own values (int8: 5x numpy's
            # float32 conversion and product, 62.5k x 384)
            found = exact_search(
                rows[picked], native[q], min(count, len(picked)), METRICS[self.space], exact=True
            )
            best = found.keys[: len(found)].astype(np.int64)
            counts[q] = len(best)
            out[q, : len(best)] = keys[picked[best]]
        if single:
            return Found(out[0, : counts[0]])
        return Found(out, counts)

    def _nearest_blocks(self, query: np.ndarray, want: int) -> np.ndarray:
        """The blocks whose means lie nearest ``query`` (sorted), holding ``want`` rows."""
        if self.space == "ip":
            scores = -(self.means @ query)
        else:  # l2, and cosine's unit-length rows: the nearest means by l2
            scores = self._mean_norms - 2 * (self.means @ query)
        take = min(len(scores), -(-want // self.block))
        return np.sort(np.argpartition(scores, take - 1)[:take]) if take < len(scores) else np.arange(take)

    def _read_blocks(self, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and keys of the sorted ``blocks``: (len * block, dim) and (len * block,), the
        keys _NONE past a file's last row. Blocks of one file at most ROUTE_GAP_BYTES apart
        are read as one range, every range side by side."""
        part = self._part[blocks]
        local = blocks - self._first[part]  # block numbers within their own file
        gap = ROUTE_GAP_BYTES // (self.block * self.parts[0][0].row_bytes)
        breaks = np.flatnonzero((np.diff(local) > gap) | (np.diff(part) != 0)) + 1
        runs = np.split(np.arange(len(blocks)), breaks)
        paths, starts, ends = [], [], []
        for run in runs:
            route, path = self.parts[int(part[run[0]])]
            paths.append(path)
            starts.append(route.offset + int(local[run[0]]) * self.block * route.row_bytes)
            stop = min((int(local[run[-1]]) + 1) * self.block, len(route.keys))
            ends.append(route.offset + stop * route.row_bytes)
        dim = self.parts[0][0].row_bytes // self.kind.itemsize
        rows = np.zeros((len(blocks) * self.block, dim), dtype=self.kind)
        keys = np.full(len(blocks) * self.block, _NONE, dtype=np.uint64)
        within = np.arange(self.block)
        for run, data in zip(runs, self.read(paths, starts, ends)):
            route, _ = self.parts[int(part[run[0]])]
            got = np.frombuffer(data, dtype=self.kind).reshape(-1, dim)
            # the run's chosen blocks (not the gaps read between them), slot by slot
            slots = (local[run][:, None] * self.block + within).reshape(-1)
            into = (run[:, None] * self.block + within).reshape(-1)
            real = slots < len(route.keys)
            rows[into[real]] = got[slots[real] - int(local[run[0]]) * self.block]
            keys[into[real]] = route.keys[slots[real]]
        return rows, keys


METRICS = {"l2": MetricKind.L2sq, "cosine": MetricKind.Cos, "ip": MetricKind.IP}
_NONE = np.uint64(np.iinfo(np.uint64).max)  # no row: past the end of a file
