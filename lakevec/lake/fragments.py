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
import struct
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
from lakevec.lake.forks import resolve
from lakevec.lake.manifest import FragmentEntry, Manifest
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
TAIL_BYTES = 256 << 10  # a fragment footer and the columns after its last vectors, one GET
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
        postings_loader: Callable[[], Postings | None] | None = None,
        ranged: RangedVectors | None = None,
    ) -> None:
        self.table = table
        #: rows' vectors by byte range, while this process has no copy of the remote file
        self.ranged = ranged
        self._load_postings = postings_loader
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


def _column_ranges(footer: pq.FileMetaData, skip: str) -> list[tuple[int, int]]:
    """Byte ranges of every column chunk but ``skip``'s, adjacent ones joined."""
    ranges: list[tuple[int, int]] = []
    for g in range(footer.num_row_groups):
        group = footer.row_group(g)
        for j in range(group.num_columns):
            chunk = group.column(j)
            if chunk.path_in_schema.split(".")[0] == skip:
                continue
            start = chunk.data_page_offset
            if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                start = min(start, chunk.dictionary_page_offset)
            end = start + chunk.total_compressed_size
            if ranges and start <= ranges[-1][1]:
                ranges[-1] = (ranges[-1][0], max(end, ranges[-1][1]))
            else:
                ranges.append((start, end))
    return ranges


def _columns_but_vectors(source: pa.NativeFile, full: str, footer: pq.FileMetaData | None = None) -> pa.Table:
    """Every column of a fragment file but its vectors (what a snapshot keeps in memory)."""
    try:
        parquet = pq.ParquetFile(source, metadata=footer)
        return parquet.read(columns=[c for c in parquet.schema_arrow.names if c != "embedding"])
    except (pa.ArrowException, ValueError) as exc:
        raise corrupt(full, "fragment", exc) from None


def _arrived(data: FragmentData, download: Future) -> None:
    if download.exception() is None:
        data.ranged = None  # rows are read from the copy now


class FragmentCache:
    """Immutable files, read once per process: fragments by path, deletion masks by path."""

    def __init__(self, storage: Storage, directory: str) -> None:
        self.storage = storage
        self.directory = directory
        self._fragments: dict[str, FragmentData] = {}
        self._deletes: dict[str, np.ndarray] = {}
        self._pending: dict[str, FragmentData] = {}  # read in part, not copied yet
        self._lock = threading.Lock()

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
        futures = self.storage.prefetch(whole) if len(whole) > 1 else []
        if partial:
            self._read_partial(partial)
        for future in futures:
            future.result()

    def _read_partial(self, entries: list[FragmentEntry]) -> None:
        """Read the fragments' columns but the vectors by range: each file's tail (its footer
        and the columns its last vectors are followed by) in one batch of GETs, then the
        other row groups' columns in a second."""
        paths = [self.path(e.path) for e in entries]
        sizes = [e.bytes or self.storage.size(p) for e, p in zip(entries, paths)]
        tails = [max(0, size - TAIL_BYTES) for size in sizes]
        ends = self.storage.read_ranges(paths, tails, sizes)
        footers: list[pq.FileMetaData] = []
        wanted: list[tuple[int, int, int]] = []  # (file, start, end)
        for i, (path, end) in enumerate(zip(paths, ends)):
            try:
                length = struct.unpack_from("<I", end, len(end) - 8)[0] + 8
                if length > len(end):  # a footer larger than the tail read
                    tails[i] = sizes[i] - length
                    end = ends[i] = self.storage.read_ranges([path], [tails[i]], [sizes[i]])[0]
                footer = pq.read_metadata(pa.BufferReader(end[-length:]))
            except (pa.ArrowException, ValueError, struct.error) as exc:
                raise corrupt(path, "fragment", exc) from None
            footers.append(footer)
            wanted += [
                (i, a, min(b, tails[i])) for a, b in _column_ranges(footer, "embedding") if a < tails[i]
            ]
        parts = self.storage.read_ranges(
            [paths[i] for i, _, _ in wanted], [a for _, a, _ in wanted], [b for _, _, b in wanted]
        )
        pieces: dict[int, list[tuple[int, bytes]]] = {}
        for (i, a, _), part in zip(wanted, parts):
            pieces.setdefault(i, []).append((a, part))
        laid_out_otherwise = []
        for i, (entry, path, footer) in enumerate(zip(entries, paths, footers)):
            buffer = pa.allocate_buffer(sizes[i])  # pages never written stay unallocated
            view = memoryview(buffer).cast("B")
            for a, part in [(tails[i], ends[i]), *pieces.get(i, [])]:
                view[a : a + len(part)] = part
            table = _columns_but_vectors(pa.BufferReader(buffer), path, footer)
            del view, buffer
            ranged = RangedVectors.from_footer(footer, self.storage.read_ranges, path)
            if ranged is None:
                laid_out_otherwise.append(path)
            self._add(entry, path, table, ranged)
        # a file whose rows cannot be located from its footer is copied now, side by side
        for future in self.storage.prefetch(laid_out_otherwise):
            future.result()

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
            try:
                with self.storage.open_immutable(full) as f:
                    table = _columns_but_vectors(f, full)
            except (pa.ArrowException, ValueError) as exc:  # the copy itself unreadable
                raise corrupt(full, "fragment", exc) from None
            data = self._add(entry, full, table)
        return data

    def _add(
        self, entry: FragmentEntry, full: str, table: pa.Table, ranged: RangedVectors | None = None
    ) -> FragmentData:
        if table.num_rows != entry.rows:
            raise corrupt(
                full, "fragment", ValueError(f"{table.num_rows} rows, the manifest says {entry.rows}")
            )
        data = FragmentData(
            flatten(table),
            lambda: self._read_embeddings(full),
            lambda: self.storage.local_copy(full),
            (lambda: self._read_postings(entry.text)) if entry.text else None,  # type: ignore[arg-type]
            ranged,
        )
        with self._lock:
            data = self._fragments.setdefault(entry.path, data)
            if data.ranged is not None:
                self._pending[full] = data
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

    def forget(self, keep: set[str]) -> None:
        """Drop cached files no longer referenced (after compaction or deletes)."""
        with self._lock:
            for key in [k for k in self._fragments if k not in keep]:
                del self._fragments[key]
            for key in [k for k in self._deletes if k not in keep]:
                del self._deletes[key]
