"""A pinned collection version: its live rows numbered across fragments, and the groups of
fragments that share an index. What is read from each fragment file lives in
:mod:`lakevec.lake.fragments`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakevec.lake.fragments import FragmentCache, id_hashes
from lakevec.lake.manifest import Manifest
from lakevec.lake.quantize import PROJECTED, Projection
from lakevec.lake.schema import (
    ARROW_TYPES,
    META_PREFIX,
    numbers,
    strings,
)
from lakevec.lake.vectors import RowVectors, take_ranged

_BASE_COLUMNS = ("id", "document", "uri", "_seq")


class Snapshot:
    """One version of a collection, with positions ``g`` that number its rows across fragments."""

    def __init__(self, manifest: Manifest, cache: FragmentCache) -> None:
        self.manifest = manifest
        self._cache = cache
        cache.prefetch(manifest)
        self.fragments = [cache.fragment(e) for e in manifest.fragments]
        self.dead = [cache.dead_rows(e) for e in manifest.fragments]
        sizes = [f.num_rows for f in self.fragments]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self._ranged = any(f.ranged is not None for f in self.fragments)
        self._unloaded = any(not f.loaded for f in self.fragments)

    @property
    def version(self) -> int:
        return self.manifest.version

    def __len__(self) -> int:
        return self.manifest.live_rows

    # -- ids -----------------------------------------------------------------------------
    def lookup(self, ids: list[str] | pa.Array) -> np.ndarray:
        """Position of each id's live row, -1 where the id has none."""
        result = np.full(len(ids), -1, dtype=np.int64)
        if not ids:
            return result
        hashes = id_hashes(ids)
        # sorted needles make each binary search start near the last one (cache friendly)
        needles = np.argsort(hashes)
        hashes = hashes[needles]
        id_array = strings(ids)
        for i, (frag, entry) in enumerate(zip(self.fragments, self.manifest.fragments)):
            if entry.live_rows == 0:
                continue
            query, rows = frag.find(hashes)
            if len(query) == 0:
                continue
            query = needles[query]
            same = pc.equal(frag.table.column("id").take(rows), id_array.take(query))
            keep = numbers(same).copy()
            if self.dead[i] is not None:
                keep &= ~np.isin(rows, self.dead[i])
            result[query[keep]] = self.offsets[i] + rows[keep]
        return result

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fragment index, row within fragment) of each position."""
        frag = np.searchsorted(self.offsets, positions, side="right") - 1
        return frag, positions - self.offsets[frag]

    # -- row views -----------------------------------------------------------------------
    @cached_property
    def live(self) -> np.ndarray:
        mask = np.ones(int(self.offsets[-1]), dtype=bool)
        for i, dead in enumerate(self.dead):
            if dead is not None:
                mask[self.offsets[i] + dead.astype(np.int64)] = False
        return mask

    @cached_property
    def rows(self) -> pa.Table:
        """All rows (dead too) with every metadata field as a column, plus ``_g`` and ``_live``."""
        names = list(_BASE_COLUMNS)
        types = [pa.string(), pa.string(), pa.string(), pa.int64()]
        for f in self.manifest.fields:
            names.append(META_PREFIX + f.name)
            types.append(ARROW_TYPES[f.kind])
        schema = pa.schema([*zip(names, types), ("_g", pa.int64()), ("_live", pa.bool_())])
        parts = []
        for i, frag in enumerate(self.fragments):
            t, n = frag.table, frag.num_rows
            cols = [
                t.column(name) if name in t.column_names else pa.nulls(n, typ)
                for name, typ in zip(names, types)
            ]
            cols.append(pa.array(np.arange(self.offsets[i], self.offsets[i + 1], dtype=np.int64)))
            cols.append(pa.array(self.live[self.offsets[i] : self.offsets[i + 1]]))
            parts.append(pa.Table.from_arrays(cols, schema=schema))
        if not parts:
            return schema.empty_table()
        return pa.concat_tables(parts)

    @cached_property
    def seq(self) -> np.ndarray:
        if not self.fragments:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([numbers(f.table.column("_seq")) for f in self.fragments])

    @cached_property
    def live_in_order(self) -> np.ndarray:
        """Positions of the live rows in insertion order (Chroma's order for ``get``)."""
        return self.in_order(np.flatnonzero(self.live))

    @cached_property
    def search_groups(self) -> tuple[list[Group], list[int]]:
        """Index groups and the unindexed tail (see :func:`groups_of`)."""
        return groups_of(self)

    def projection(self, relative: str) -> Projection | None:
        """An index's projection (None: its file is gone)."""
        return self._cache.projection(relative)

    def in_order(self, positions: np.ndarray) -> np.ndarray:
        seq = self.seq[positions]
        if len(seq) > 1 and not np.all(seq[1:] > seq[:-1]):
            positions = positions[np.argsort(seq, kind="stable")]
        return positions

    def take(self, positions: np.ndarray, columns: list[str] | None = None) -> pa.Table:
        """Rows at ``positions`` (in that order); only ``columns`` of the row view if given."""
        rows = self.rows if columns is None else self.rows.select(columns)
        if len(positions) <= 64:  # a few winners: slice each row, cheaper than a chunked take
            return (
                pa.concat_tables([rows.slice(int(p), 1) for p in positions])
                if len(positions)
                else rows.slice(0, 0)
            )
        return rows.take(pa.array(positions, type=pa.int64()))

    def runs(self, ordered: np.ndarray) -> list[tuple[int, int, int]]:
        """(fragment, start, end) of each fragment's run of sorted ``positions``."""
        bounds = np.searchsorted(ordered, self.offsets)
        return [
            (f, int(bounds[f]), int(bounds[f + 1])) for f in np.flatnonzero(bounds[1:] > bounds[:-1]).tolist()
        ]

    def values(self, positions: np.ndarray, columns: list[str]) -> dict[str, list]:
        """Python values of some row-view columns at ``positions``. A few rows are read straight
        from their fragments, so a small query result never builds the concatenated view."""
        if len(positions) > 64:
            sub = self.take(positions, columns)
            return {name: sub.column(name).to_pylist() for name in columns}
        frag, rows = self.locate(positions)
        unloaded = []
        if self._unloaded:  # remote files read in part: the row groups of these rows
            unloaded = [
                (self.fragments[f], rows[frag == f])
                for f in np.unique(frag).tolist()
                if not self.fragments[f].loaded
            ]
            if unloaded:
                self._cache.read_rows(unloaded)
            else:
                self._unloaded = any(not f.loaded for f in self.fragments)
        if unloaded or len(positions) * len(columns) <= 128:
            # a query's handful of values are read one by one: a take per fragment and column
            # costs more than the scalars it would save
            where = [self.fragments[f].row_columns(r) for f, r in zip(frag.tolist(), rows.tolist())]
            out: dict[str, list] = {}
            for name in columns:
                out[name] = [c[name][r].as_py() if name in c else None for c, r in where]
            return out
        order = np.argsort(positions, kind="stable")
        ordered = positions[order]
        values: dict[str, list] = {name: [] for name in columns}
        for f, a, b in self.runs(ordered):
            table = self.fragments[f].columns
            picked = pa.array(ordered[a:b] - self.offsets[f])
            for name in columns:  # one take per fragment and column
                values[name] += table[name].take(picked).to_pylist() if name in table else [None] * (b - a)
        back = np.argsort(order).tolist()  # from sorted back to the caller's order
        return {name: [items[i] for i in back] for name, items in values.items()}

    @cached_property
    def metadata_table(self) -> pa.Table:
        """The metadata columns in one chunk each, for the Arrow filter kernels."""
        return self.rows.select(self.metadata_columns()).combine_chunks()

    def metadata_columns(self) -> list[str]:
        return [META_PREFIX + f.name for f in self.manifest.fields]

    def embeddings(self, positions: np.ndarray) -> np.ndarray:
        if self._ranged:
            self._ranged = any(f.ranged is not None for f in self.fragments)
            if self._ranged:
                return self._embeddings_by_range(positions)
        if len(self.fragments) == 1:
            return self.fragments[0].take(positions)
        dim = self.manifest.dimension or 0
        out = np.empty((len(positions), dim), dtype=np.float32)
        if len(positions) > 1 and np.all(positions[1:] >= positions[:-1]):
            # sorted (filter results): one contiguous run of positions per fragment
            for i, a, b in self.runs(positions):
                out[a:b] = self.fragments[i].take(positions[a:b] - self.offsets[i])
            return out
        if len(positions) <= 64:  # a query's candidates: row by row beats a run per fragment
            frag, rows = self.locate(positions)
            sources: dict[int, np.ndarray | RowVectors] = {}
            for j, (f, r) in enumerate(zip(frag.tolist(), rows.tolist())):
                source = sources.get(f)
                if source is None:
                    source = sources[f] = self.fragments[f].rows()
                out[j] = source[r]
            return out
        order = np.argsort(positions, kind="stable")  # one run of positions per fragment
        ordered = positions[order]
        for i, a, b in self.runs(ordered):
            out[order[a:b]] = self.fragments[i].take(ordered[a:b] - self.offsets[i])
        return out

    def _embeddings_by_range(self, positions: np.ndarray) -> np.ndarray:
        """:meth:`embeddings` while some fragments are remote files not copied yet: the rows
        of all of those in one batch of ranged GETs (a query's candidates span many files)."""
        frag, rows = self.locate(positions)
        out = np.empty((len(positions), self.manifest.dimension or 0), dtype=np.float32)
        parts, slots = [], []
        for f in np.unique(frag).tolist():
            chosen = np.flatnonzero(frag == f)
            ranged = self.fragments[f].by_range(len(chosen))
            if ranged is None:
                out[chosen] = self.fragments[f].take(rows[chosen])
            else:
                parts.append((ranged, rows[chosen]))
                slots.append(chosen)
        for chosen, vectors in zip(slots, take_ranged(parts)):
            out[chosen] = vectors
        return out


@dataclass
class Group:
    """The fragments of a snapshot that one index holds, and how its keys map to positions."""

    path: str
    fragments: list[int]
    bases: np.ndarray  # sorted key bases
    rows: np.ndarray
    offsets: np.ndarray  # position of each fragment's row 0
    scale: float | None = None  # the index's int8 scale (None: float16)
    codec: str | None = None  # how vectors enter it (FragmentEntry.index_codec)
    projection: str | None = None  # its projection's file (FragmentEntry.index_projection)
    projector: Projection | None = None  # ... loaded

    shift: int | None = field(init=False)  # position - key for every key, when one number does

    def __post_init__(self) -> None:
        # the fragments follow each other both in the index and in the snapshot (as they do
        # until a compaction reorders them): a key's position is the key plus one number
        follow = np.array_equal(self.bases[1:], self.bases[:-1] + self.rows[:-1])
        same = np.array_equal(self.offsets[1:] - self.bases[1:], self.offsets[:-1] - self.bases[:-1])
        self.shift = int(self.offsets[0] - self.bases[0]) if len(self.bases) and follow and same else None


def groups_of(snap: Snapshot) -> tuple[list[Group], list[int]]:
    """Index groups of the snapshot, and the unindexed tail (fragment indices)."""
    by_path: dict[str, list[int]] = {}
    tail = []
    for i, entry in enumerate(snap.manifest.fragments):
        if entry.index is None:
            tail.append(i)
        else:
            by_path.setdefault(entry.index, []).append(i)
    groups = []
    for path, frags in by_path.items():
        frags.sort(key=lambda i: snap.manifest.fragments[i].index_base)
        first = snap.manifest.fragments[frags[0]]
        projector = None
        if first.index_codec == PROJECTED:
            projector = snap.projection(first.index_projection) if first.index_projection else None
            if projector is None:  # its projection is gone: the index cannot be searched
                tail += frags
                continue
        groups.append(
            Group(
                path,
                frags,
                np.array([snap.manifest.fragments[i].index_base for i in frags], dtype=np.int64),
                np.array([snap.manifest.fragments[i].rows for i in frags], dtype=np.int64),
                np.array([snap.offsets[i] for i in frags], dtype=np.int64),
                first.index_scale,
                first.index_codec,
                first.index_projection,
                projector,
            )
        )
    return groups, sorted(tail)
