"""What a process keeps of each immutable fragment file: its columns, its id hash index, and its
vectors in a byte-bounded LRU cache.

Fragments and deletion files never change once written, so what is read from them is cached by
file name (:class:`FragmentCache`) and reused by every later snapshot; a new snapshot only loads
the files that are new to it. Ids are found through per-fragment sorted 64-bit hashes, so the
cost of locating a batch of ids does not grow with the number of rows.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakevec.errors import corrupt
from lakevec.lake.columns import RangedColumns, columns_but_vectors, read_footers, read_groups, read_tables
from lakevec.lake.forks import resolve
from lakevec.lake.manifest import FragmentEntry, Manifest
from lakevec.lake.quantize import Projection
from lakevec.lake.schema import embeddings_of, flatten, read_deletion
from lakevec.lake.storage import Storage
from lakevec.lake.text import Postings
from lakevec.lake.vectors import RangedVectors, RowVectors


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
        table: pa.Table | Callable[[FragmentData], None],
        embeddings_loader: Callable[[], np.ndarray],
        local_file: Callable[[], str | None] | None = None,
        postings_loader: Callable[[], Postings | None] | None = None,
        ranged: RangedVectors | None = None,
        partial: RangedColumns | None = None,
    ) -> None:
        if isinstance(table, pa.Table):
            self._table: pa.Table | None = table
            self._load_table: Callable[[FragmentData], None] | None = None
            self.num_rows = table.num_rows
        else:  # a remote file read in part: the loader sets the table of this and its peers
            self._table, self._load_table = None, table
            self.num_rows = partial.num_rows if partial is not None else 0
        #: rows' vectors by byte range, while this process has no copy of the remote file
        self.ranged = ranged
        #: its footer and the row groups a few result rows were read from, until the table is
        self.partial = partial
        self._load_postings = postings_loader
        self._load_embeddings = embeddings_loader
        self._local_file = local_file
        self._rows: RowVectors | None | bool = False  # False: not opened yet
        self.key = next(_KEYS)
        weakref.finalize(self, VECTORS.drop, self.key)

    @property
    def table(self) -> pa.Table:
        """The flattened columns but the vectors (read on first use where the file is remote)."""
        if self._table is None:
            assert self._load_table is not None
            self._load_table(self)
        return self._table  # type: ignore[return-value]

    def set_table(self, table: pa.Table) -> None:
        self._table, self.partial = table, None

    @property
    def loaded(self) -> bool:
        return self._table is not None

    def row_columns(self, row: int) -> tuple[dict[str, pa.ChunkedArray], int]:
        """Where one row's values are: the fragment's columns, or the row group read for it
        (:meth:`FragmentCache.read_rows`)."""
        partial = self.partial
        if self._table is None and partial is not None:
            g = int(partial.group_of(np.int64(row)))
            group = partial.groups.get(g)
            if group is not None:
                return group, row - int(partial.starts[g])
        return self.columns, row

    @property
    def embeddings(self) -> np.ndarray:
        return VECTORS.get(self.key, self._load_embeddings)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows``: from memory when the fragment's are loaded; a few of them
        from the file (re-ranking a query's candidates must not decode a whole fragment)."""
        loaded = VECTORS.peek(self.key)
        if loaded is not None:
            return loaded[rows]
        ranged = self.by_range(len(rows))
        if ranged is not None:
            return ranged.take(rows)
        if len(rows) <= max(SPARSE_ROWS, self.num_rows // 8):
            reader = self._row_reader()
            if reader is not None:
                return reader.take(rows)
        return self.embeddings[rows]

    def by_range(self, count: int) -> RangedVectors | None:
        """Where ``count`` rows' vectors are best read by byte range: while the file is remote
        and not copied yet, its vectors not loaded, and the rows few."""
        if self.ranged is None or count > max(SPARSE_ROWS, self.num_rows // 8):
            return None
        return self.ranged if VECTORS.peek(self.key) is None else None

    def read_once(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` (sorted, unique), contiguous, without keeping the fragment's
        in :data:`VECTORS`: a one-pass reader (an index build) must not leave the cache full of
        vectors no query reads again (10M rows: 4 GiB held after the build). Every row: the
        array itself (the caller only reads it); some: their copy."""
        loaded = VECTORS.peek(self.key)
        if loaded is None:
            loaded = self._load_embeddings()
        return loaded if len(rows) == self.num_rows else loaded[rows]

    def rows(self) -> np.ndarray | RowVectors:
        """What a few single rows are read from (``[row]`` of it is one vector): the loaded
        vectors, or the file's pages until they are loaded."""
        loaded = VECTORS.peek(self.key)
        if loaded is not None:
            return loaded
        reader = self._row_reader()
        return reader if reader is not None else self.embeddings

    @cached_property
    def postings(self) -> Postings:
        """The documents' full-text postings: the fragment's postings file when it has one,
        else built from its documents (once per process)."""
        stored = self._load_postings() if self._load_postings is not None else None
        return stored if stored is not None else Postings.build(self.table.column("document"))

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


def _arrived(data: FragmentData, download: Future) -> None:
    if not download.cancelled() and download.exception() is None:
        data.ranged = None  # rows are read from the copy now


class FragmentCache:
    """Immutable files, read once per process: fragments by path, deletion masks by path."""

    def __init__(self, storage: Storage, directory: str) -> None:
        self.storage = storage
        self.directory = directory
        self._fragments: dict[str, FragmentData] = {}
        self._deletes: dict[str, np.ndarray] = {}
        self._projections: dict[str, Projection] = {}
        self._pending: dict[str, FragmentData] = {}  # read in part, not copied yet
        self._partial: dict[str, FragmentData] = {}  # read in part, columns not loaded yet
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def path(self, relative: str) -> str:
        return resolve(self.directory, relative)

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
        """Read the fragments and deletion files this process has not read yet, side by side
        (on object stores; one at a time, each GET runs at the server's per-request speed).

        A remote fragment with no copy in the file cache is not copied before a query: its
        columns but the vectors are read by byte range, and its vectors by row until
        :meth:`download_rest` has copied the file (1M x 384 on a local S3 server: 1.5 GB of
        fragments, where the columns a snapshot keeps are 2 % of that)."""
        new = [e for e in manifest.fragments if e.path not in self._fragments]
        cached = [self.storage.is_cached(self.path(e.path)) for e in new]
        partial = [e for e, held in zip(new, cached) if not held]
        whole = [self.path(e.path) for e, held in zip(new, cached) if held]
        whole += [
            self.path(e.deletes) for e in manifest.fragments if e.deletes and e.deletes not in self._deletes
        ]
        whole += sorted(
            {
                self.path(e.index_projection)
                for e in manifest.fragments
                if e.index_projection and e.index_projection not in self._projections
            }
        )
        futures = self.storage.prefetch(whole) if len(whole) > 1 else []
        if partial:
            self._read_partial(partial)
        for future in futures:
            future.result()

    def _read_partial(self, entries: list[FragmentEntry]) -> None:
        """Read the fragments' footers by range (one batch of GETs): their columns are read
        when a reader needs them (:meth:`read_rows`, :meth:`_load_tables`), their vectors by
        row (:class:`RangedVectors`) until :meth:`download_rest` has copied the files."""
        paths = [self.path(e.path) for e in entries]
        sizes = [e.bytes or self.storage.size(p) for e, p in zip(entries, paths)]
        laid_out_otherwise = []
        for entry, path, partial in zip(entries, paths, read_footers(self.storage.read_ranges, paths, sizes)):
            ranged = RangedVectors.from_footer(partial.footer, self.storage.read_ranges, path)
            if ranged is None:
                laid_out_otherwise.append(path)
            self._add(entry, path, self._load_tables, ranged, partial)
        # a file whose rows cannot be located from its footer is copied now, side by side
        for future in self.storage.prefetch(laid_out_otherwise):
            future.result()

    def _load_tables(self, data: FragmentData) -> None:
        """Give ``data`` and every other fragment read in part its columns: from its copy
        where one arrived, else by range, all in one batch of GETs (a reader that needs one
        fragment's whole columns, a filter or a lookup by id, needs every fragment's)."""
        with self._load_lock:
            if data.loaded:
                return
            with self._lock:
                todo = [data, *(d for d in self._partial.values() if d is not data and not d.loaded)]
            remote = [d for d in todo if d.partial is not None and not self.storage.is_cached(d.partial.path)]
            tables = read_tables(self.storage.read_ranges, [d.partial for d in remote])  # type: ignore[misc]
            for d, table in zip(remote, tables):
                d.set_table(table)
            for d in todo:
                if not d.loaded and d.partial is not None:
                    d.set_table(flatten(self._read_copy(d.partial.path)))
            with self._lock:
                self._partial = {k: d for k, d in self._partial.items() if not d.loaded}

    def read_rows(self, wanted: list[tuple[FragmentData, np.ndarray]]) -> None:
        """Make a few rows of fragments whose columns are not loaded readable through
        :meth:`FragmentData.row_columns`: their row groups, one batch of GETs for all (a
        fragment whose copy arrived loads its columns from it: no request)."""
        groups = []
        for data, rows in wanted:
            partial = data.partial
            if data.loaded or partial is None:
                continue
            if self.storage.is_cached(partial.path):
                data.set_table(flatten(self._read_copy(partial.path)))
            else:
                groups.append((partial, np.unique(partial.group_of(rows)).tolist()))
        if groups:
            read_groups(self.storage.read_ranges, groups)

    def download_rest(self) -> None:
        """Start copying, in the background, the files read in part; a fragment's rows are
        read from its copy once that arrived (the copy is what later queries need: no
        request per query)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for future, data in zip(self.storage.prefetch(list(pending)), pending.values()):
            future.add_done_callback(functools.partial(_arrived, data))

    def fragment(self, entry: FragmentEntry) -> FragmentData:
        data = self._fragments.get(entry.path)
        if data is None and not self.storage.is_cached(self.path(entry.path)):
            self._read_partial([entry])
            data = self._fragments[entry.path]
        if data is None:
            full = self.path(entry.path)
            data = self._add(entry, full, self._read_copy(full))
        return data

    def _read_copy(self, full: str) -> pa.Table:
        """A fragment's columns but the vectors, from the file (its copy, on a remote root)."""
        try:
            with self.storage.open_immutable(full) as f:
                return columns_but_vectors(f, full)
        except (pa.ArrowException, ValueError) as exc:  # the copy itself unreadable
            raise corrupt(full, "fragment", exc) from None

    def _add(
        self,
        entry: FragmentEntry,
        full: str,
        table: pa.Table | Callable[[FragmentData], None],
        ranged: RangedVectors | None = None,
        partial: RangedColumns | None = None,
    ) -> FragmentData:
        rows = table.num_rows if isinstance(table, pa.Table) else partial.num_rows  # type: ignore[union-attr]
        if rows != entry.rows:
            raise corrupt(full, "fragment", ValueError(f"{rows} rows, the manifest says {entry.rows}"))
        data = FragmentData(
            flatten(table) if isinstance(table, pa.Table) else table,
            lambda: self._read_embeddings(full),
            lambda: self.storage.local_copy(full),
            (lambda: self._read_postings(entry.text)) if entry.text else None,  # type: ignore[arg-type]
            ranged,
            partial,
        )
        with self._lock:
            data = self._fragments.setdefault(entry.path, data)
            if data.ranged is not None:
                self._pending[full] = data
            if not data.loaded:
                self._partial[full] = data
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

    def _read_postings(self, relative: str) -> Postings | None:
        full = self.path(relative)
        try:
            return Postings.from_bytes(self.storage.read_immutable(full))
        except FileNotFoundError:
            return None  # derived data: rebuilt from the documents
        except (ValueError, KeyError, OSError) as exc:
            raise corrupt(full, "postings", exc) from None

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

    def projection(self, relative: str) -> Projection | None:
        """An index's projection (lake/quantize.py), read once; None if its file is gone (the
        rows of its indexes are then searched exactly)."""
        projection = self._projections.get(relative)
        if projection is None:
            full = self.path(relative)
            try:
                projection = Projection.from_bytes(self.storage.read_immutable(full))
            except FileNotFoundError:
                return None
            except (OSError, ValueError, KeyError) as exc:
                raise corrupt(full, "projection", exc) from None
            self._projections[relative] = projection
        return projection

    def put_projection(self, relative: str, projection: Projection) -> None:
        """Remember a projection this process just wrote."""
        self._projections[relative] = projection

    def forget(self, keep: set[str]) -> None:
        """Drop cached files no longer referenced (after compaction or deletes)."""
        with self._lock:
            for key in [k for k in self._fragments if k not in keep]:
                del self._fragments[key]
                self._partial.pop(self.path(key), None)
            for key in [k for k in self._deletes if k not in keep]:
                del self._deletes[key]
            for key in [k for k in self._projections if k not in keep]:
                del self._projections[key]
