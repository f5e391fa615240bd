"""A pinned collection version and the in-memory views readers and writers share.

Fragments and deletion files never change once written, so what is read from them is cached by
file name (:class:`FragmentCache`) and reused by every later snapshot; a new snapshot only loads
the files that are new to it. Ids are found through per-fragment sorted 64-bit hashes, so the
cost of locating a batch of ids does not grow with the number of rows.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lakevec.errors import corrupt
from lakevec.lake.manifest import FragmentEntry, Manifest
from lakevec.lake.schema import (
    ARROW_TYPES,
    META_PREFIX,
    embeddings_of,
    flatten,
    numbers,
    read_deletion,
    strings,
)
from lakevec.lake.storage import Storage
from lakevec.lake.vectors import RowVectors

_BASE_COLUMNS = ("id", "document", "uri", "_seq")


def id_hashes(ids: list[str] | pa.Array | pa.ChunkedArray) -> np.ndarray:
    import polars as pl  # imported on first use: a process that only queries never needs it

    series = pl.Series(ids, dtype=pl.String) if isinstance(ids, list) else pl.from_arrow(ids)
    return series.hash(seed=0x1A4E).to_numpy()


class VectorCache:
    """Fragment vectors kept in memory, least recently used first out past a byte budget
    (``LAKEVEC_VECTOR_CACHE_BYTES``, default 4 GiB), so a process that writes or reads a
    collection larger than memory keeps working; evicted vectors are read again from Parquet."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def peek(self, key: int) -> np.ndarray | None:
        with self._lock:
            return self._items.get(key)

    def get(self, key: int, load: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            array = self._items.get(key)
            if array is not None:
                self._items.move_to_end(key)
                return array
        return self.put(key, load())

    def put(self, key: int, array: np.ndarray) -> np.ndarray:
        with self._lock:
            if key not in self._items:
                self._items[key] = array
                self._bytes += array.nbytes
            while self._bytes > self.budget and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return array

    def drop(self, key: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes


VECTORS = VectorCache(int(os.environ.get("LAKEVEC_VECTOR_CACHE_BYTES", 4 << 30)))
_KEYS = itertools.count()
SPARSE_ROWS = 256  # at most this many rows (or 1/8 of a fragment) are read without loading it


class FragmentData:
    """What readers keep of one fragment: its flattened columns and its id hash index; its
    vectors live in :data:`VECTORS` once a reader needed many of them, and a few are read
    straight from the file (:mod:`lakevec.lake.vectors`) until then."""

    def __init__(
        self,
        table: pa.Table,
        embeddings_loader: Callable[[], np.ndarray],
        local_file: Callable[[], str | None] | None = None,
    ) -> None:
        self.table = table
        self.num_rows = table.num_rows
        self._load_embeddings = embeddings_loader
        self._local_file = local_file
        self._rows: RowVectors | None | bool = False  # False: not opened yet
        self.key = next(_KEYS)
        weakref.finalize(self, VECTORS.drop, self.key)

    @property
    def embeddings(self) -> np.ndarray:
        return VECTORS.get(self.key, self._load_embeddings)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows``: from memory when the fragment's are loaded; a few of them
        from the file (re-ranking a query's candidates must not decode a whole fragment)."""
        loaded = VECTORS.peek(self.key)
        if loaded is not None:
            return loaded[rows]
        if len(rows) <= max(SPARSE_ROWS, self.num_rows // 8):
            reader = self._row_reader()
            if reader is not None:
                return reader.take(rows)
        return self.embeddings[rows]

    def rows(self) -> np.ndarray | RowVectors:
        """What a few single rows are read from (``[row]`` of it is one vector): the loaded
        vectors, or the file's pages until they are loaded."""
        loaded = VECTORS.peek(self.key)
        if loaded is not None:
            return loaded
        reader = self._row_reader()
        return reader if reader is not None else self.embeddings

    @cached_property
    def columns(self) -> dict[str, pa.ChunkedArray]:
        """The flattened columns by name (a query result reads a few values of each)."""
        return dict(zip(self.table.column_names, self.table.columns))

    def blocks(self) -> list[tuple[int, np.ndarray]]:
        """Every row's vector as (first row, block) pieces without loading the fragment: the
        loaded array if there is one, else its file's pages (an exact search over a fragment
        read once must not allocate and fault in a copy of it: 0.5 s per 300 MB here)."""
        source = self.rows()
        return source.blocks() if isinstance(source, RowVectors) else [(0, source)]

    def _row_reader(self) -> RowVectors | None:
        if self._rows is False:
            path = self._local_file() if self._local_file is not None else None
            self._rows = RowVectors.open(path) if path is not None else None
        return self._rows  # type: ignore[return-value]

    @cached_property
    def _id_index(self) -> tuple[np.ndarray, np.ndarray, bool]:
        """(row order, sorted id hashes, whether no two hashes are equal), built by the first
        lookup by id: a process that only queries never hashes ids."""
        hashes = id_hashes(self.table.column("id"))
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        # ids are unique within a fragment, so hashes are too unless two ids collide (2^-64)
        return order, hashes, not np.any(hashes[1:] == hashes[:-1])

    def find(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query index, row) of every stored row whose id hash equals a query hash."""
        order, stored, unique = self._id_index
        lo = np.searchsorted(stored, hashes, side="left")
        if unique:  # one binary search per needle, not two
            if not self.num_rows:
                return lo[:0], lo[:0]
            query = np.flatnonzero(stored[np.minimum(lo, self.num_rows - 1)] == hashes)
            return query, order[lo[query]]
        hi = np.searchsorted(stored, hashes, side="right")
        counts = hi - lo
        query = np.repeat(np.arange(len(hashes)), counts)
        if len(query) == 0:
            return query, query
        starts = np.repeat(lo, counts)
        within = np.arange(len(query)) - np.repeat(np.cumsum(counts) - counts, counts)
        return query, order[starts + within]


class FragmentCache:
    """Immutable files, read once per process: fragments by path, deletion masks by path."""

    def __init__(self, storage: Storage, directory: str) -> None:
        self.storage = storage
        self.directory = directory
        self._fragments: dict[str, FragmentData] = {}
        self._deletes: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def path(self, relative: str) -> str:
        return f"{self.directory}/{relative}"

    def put(self, entry: FragmentEntry, table: pa.Table, vectors: bool = True) -> None:
        """Remember a fragment this process just wrote, so it is not read back while it stays
        in the vector cache. Bulk imports pass ``vectors=False``: their vectors are read back
        when needed instead of filling memory as the import grows."""
        full = self.path(entry.path)
        data = FragmentData(
            flatten(table), lambda: self._read_embeddings(full), lambda: self.storage.local_copy(full)
        )
        if vectors:
            VECTORS.put(data.key, embeddings_of(table))
        self._fragments[entry.path] = data

    def put_deletes(self, relative: str, rows: np.ndarray) -> None:
        self._deletes[relative] = np.sort(rows)

    def prefetch(self, manifest: Manifest) -> None:
        """Fetch the fragments and deletion files this process has not read yet, side by side
        (on object stores; one at a time, each GET runs at the server's per-request speed)."""
        new = [self.path(e.path) for e in manifest.fragments if e.path not in self._fragments]
        new += [
            self.path(e.deletes) for e in manifest.fragments if e.deletes and e.deletes not in self._deletes
        ]
        if len(new) > 1:
            for future in self.storage.prefetch(new):
                future.result()

    def fragment(self, entry: FragmentEntry) -> FragmentData:
        data = self._fragments.get(entry.path)
        if data is None:
            full = self.path(entry.path)
            try:
                with self.storage.open_immutable(full) as f:
                    parquet = pq.ParquetFile(f)
                    names = [c for c in parquet.schema_arrow.names if c != "embedding"]
                    table = parquet.read(columns=names)
            except (pa.ArrowException, ValueError) as exc:
                raise corrupt(full, "fragment", exc) from None
            if table.num_rows != entry.rows:
                raise corrupt(
                    full, "fragment", ValueError(f"{table.num_rows} rows, the manifest says {entry.rows}")
                )
            data = FragmentData(
                flatten(table), lambda: self._read_embeddings(full), lambda: self.storage.local_copy(full)
            )
            with self._lock:
                data = self._fragments.setdefault(entry.path, data)
        return data

    def _read_embeddings(self, full: str) -> np.ndarray:
        local = self.storage.local_copy(full)
        reader = RowVectors.open(local) if local is not None else None
        if reader is not None:  # the page values copied as they are: no Parquet decoding
            return reader.all()
        try:
            with self.storage.open_immutable(full) as f:
                return embeddings_of(pq.ParquetFile(f).read(columns=["embedding"]))
        except (pa.ArrowException, ValueError) as exc:
            raise corrupt(full, "fragment", exc) from None

    def dead_rows(self, entry: FragmentEntry) -> np.ndarray | None:
        if entry.deletes is None:
            return None
        rows = self._deletes.get(entry.deletes)
        if rows is None:
            try:
                rows = read_deletion(self.storage.read_immutable(self.path(entry.deletes)))
            except (pa.ArrowException, ValueError) as exc:
                raise corrupt(self.path(entry.deletes), "deletion file", exc) from None
            self._deletes[entry.deletes] = rows
        return rows

    def forget(self, keep: set[str]) -> None:
        """Drop cached files no longer referenced (after compaction or deletes)."""
        with self._lock:
            for key in [k for k in self._fragments if k not in keep]:
                del self._fragments[key]
            for key in [k for k in self._deletes if k not in keep]:
                del self._deletes[key]


class Snapshot:
    """One version of a collection, with positions ``g`` that number its rows across fragments."""

    def __init__(self, manifest: Manifest, cache: FragmentCache) -> None:
        self.manifest = manifest
        cache.prefetch(manifest)
        self.fragments = [cache.fragment(e) for e in manifest.fragments]
        self.dead = [cache.dead_rows(e) for e in manifest.fragments]
        sizes = [f.num_rows for f in self.fragments]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)

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
        if len(positions) * len(columns) <= 128:
            # a query's handful of values are read one by one: a take per fragment and column
            # costs more than the scalars it would save
            frag, rows = self.locate(positions)
            where = [(self.fragments[f].columns, r) for f, r in zip(frag.tolist(), rows.tolist())]
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


@dataclass
class Group:
    """The fragments of a snapshot that one index holds, and how its keys map to positions."""

    path: str
    fragments: list[int]
    bases: np.ndarray  # sorted key bases
    rows: np.ndarray
    offsets: np.ndarray  # position of each fragment's row 0
    scale: float | None = None  # the index's int8 scale (None: float16)

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
        groups.append(
            Group(
                path,
                frags,
                np.array([snap.manifest.fragments[i].index_base for i in frags], dtype=np.int64),
                np.array([snap.manifest.fragments[i].rows for i in frags], dtype=np.int64),
                np.array([snap.offsets[i] for i in frags], dtype=np.int64),
                snap.manifest.fragments[frags[0]].index_scale,
            )
        )
    return groups, tail
