"""A few rows' vectors straight from a fragment file, without decoding its vector column.

Re-ranking an HNSW query needs the float32 vectors of a few dozen candidates. Decoding a whole
``fixed_size_list`` column from Parquet runs at ~150-200 MB/s on this machine (0.35 s per 64 MiB
fragment), so a cold process paid seconds for 40 vectors. lakevec writes the vector column
uncompressed and PLAIN-encoded (``lake/schema.py``), so each data page ends with its rows'
float32 values back to back: knowing where each page starts (its header, read once per file)
locates any row's vector in a memory map of the file. Files laid out otherwise (compressed,
dictionary-encoded, rows spanning pages, nulls) are recognised and read the ordinary way.

Only the few fields of Parquet's Thrift page header that locate the values are decoded
(compact protocol; see parquet-format's ``parquet.thrift``).
"""

from __future__ import annotations

import bisect
import mmap
import struct
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow.parquet as pq

_DATA_PAGE, _DATA_PAGE_V2 = 0, 3


class _Unsupported(Exception):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _skip(buf: bytes, i: int, kind: int) -> int:
    if kind in (1, 2):  # booleans live in the field header
        return i
    if kind == 3:
        return i + 1
    if kind in (4, 5, 6):
        return _varint(buf, i)[1]
    if kind == 7:
        return i + 8
    if kind == 8:
        size, i = _varint(buf, i)
        return i + size
    if kind in (9, 10):
        head = buf[i]
        i += 1
        count, inner = head >> 4, head & 0x0F
        if count == 15:
            count, i = _varint(buf, i)
        for _ in range(count):
            i = _skip(buf, i, inner)
        return i
    if kind == 12:
        return _struct(buf, i)[1]
    raise _Unsupported(f"thrift type {kind}")


def _struct(buf: bytes, i: int) -> tuple[dict[int, object], int]:
    """A compact-protocol struct: its integer and struct fields by id (others skipped)."""
    fields: dict[int, object] = {}
    field = 0
    while True:
        head = buf[i]
        i += 1
        if head == 0:
            return fields, i
        kind, delta = head & 0x0F, head >> 4
        if delta:
            field += delta
        else:
            raw, i = _varint(buf, i)
            field = _zigzag(raw)
        if kind in (5, 6):
            raw, i = _varint(buf, i)
            fields[field] = _zigzag(raw)
        elif kind == 12:
            fields[field], i = _struct(buf, i)
        else:
            i = _skip(buf, i, kind)


class RowVectors:
    """Random access to the vectors of one fragment file (a local file or a cached copy)."""

    def __init__(self, path: str, starts: np.ndarray, first_rows: np.ndarray, rows: int, dim: int) -> None:
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # outlives an unlink
        self._starts = starts  # byte offset of each page's first value
        self._first = first_rows  # row number of each page's first row
        # the same as lists, for one row at a time (bisect and ints, no numpy scalars)
        self._start_bytes, self._first_rows = starts.tolist(), first_rows.tolist()
        self.rows = rows
        self.dim = dim
        self._windows: dict[int, np.ndarray] = {}

    @classmethod
    def open(cls, path: str, column: str = "embedding") -> RowVectors | None:
        """The reader for ``path``, or None when its vector column is not laid out for it."""
        try:
            metadata = pq.read_metadata(path)
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                starts, first, dim = _page_map(view, metadata, column)
        except (_Unsupported, IndexError, KeyError, struct.error, ValueError, OSError):
            return None
        return cls(path, starts, first, metadata.num_rows, dim)

    def _pages(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(byte offset, first row, rows x dim view of the memory map) of each page."""
        ends = [*self._first_rows[1:], self.rows]
        for start, first, end in zip(self._start_bytes, self._first_rows, ends):
            view = np.frombuffer(self._map, dtype=np.float32, count=(end - first) * self.dim, offset=start)
            yield start, first, view.reshape(-1, self.dim)

    def all(self) -> np.ndarray:
        """Every row's vector: one copy of each page's values (memory speed, where decoding the
        column as Parquet runs at ~150-200 MB/s)."""
        out = np.empty((self.rows, self.dim), dtype=np.float32)
        for _, first, view in self._pages():
            out[first : first + len(view)] = view
        return out

    def blocks(self) -> list[tuple[int, np.ndarray]]:
        """(first row, rows x dim vectors) of each page, read in place from the memory map
        (copied only when a page's values are not 4-byte aligned, so BLAS can use them)."""
        return [(first, view if start % 4 == 0 else view.copy()) for start, first, view in self._pages()]

    def __getitem__(self, row: int) -> np.ndarray:
        """One row's vector, a view of the memory map."""
        page = bisect.bisect_right(self._first_rows, row) - 1
        offset = self._start_bytes[page] + (row - self._first_rows[page]) * 4 * self.dim
        return np.frombuffer(self._map, dtype=np.float32, count=self.dim, offset=offset)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of ``rows`` (row numbers in the file), as a (len(rows), dim) float32 array:
        one fancy-index copy per page alignment (numpy's loop, not Python's)."""
        rows = np.asarray(rows, dtype=np.int64)
        page = np.searchsorted(self._first, rows, side="right") - 1
        offsets = self._starts[page] + (rows - self._first[page]) * (4 * self.dim)
        if len(rows) <= 8:  # a few rows: numpy's per-call costs outweigh a short loop
            out = np.empty((len(rows), self.dim), dtype=np.float32)
            for j, offset in enumerate(offsets.tolist()):
                out[j] = np.frombuffer(self._map, dtype=np.float32, count=self.dim, offset=offset)
            return out
        residue = offsets % 4
        first = int(residue[0])
        if not (residue == first).all():
            out = np.empty((len(rows), self.dim), dtype=np.float32)
            for r in np.unique(residue).tolist():
                chosen = residue == r
                out[chosen] = self._window(r)[(offsets[chosen] - r) // 4]
            return out
        return self._window(first)[(offsets - first) // 4]

    def _window(self, shift: int) -> np.ndarray:
        """The file's bytes from ``shift`` on as overlapping float32 rows: row i holds the
        ``dim`` values that start at float i, so a row's vector is one index away (built once
        per shift: making the view costs more than taking a few rows through it)."""
        window = self._windows.get(shift)
        if window is None:
            count = (len(self._map) - shift) // 4
            flat = np.frombuffer(self._map, dtype=np.float32, count=count, offset=shift)
            window = np.lib.stride_tricks.as_strided(
                flat, shape=(max(count - self.dim + 1, 0), self.dim), strides=(4, 4), writeable=False
            )
            self._windows[shift] = window
        return window


def _plain_chunk(group: pq.RowGroupMetaData, column: str) -> pq.ColumnChunkMetaData | None:
    """The row group's chunk of ``column`` if it holds uncompressed float values, else None."""
    chunk = next(
        group.column(j)
        for j in range(group.num_columns)
        if group.column(j).path_in_schema.split(".")[0] == column
    )
    if chunk.compression != "UNCOMPRESSED" or chunk.physical_type != "FLOAT" or chunk.has_dictionary_page:
        return None
    return chunk


def _page_map(view: mmap.mmap, metadata: pq.FileMetaData, column: str) -> tuple[np.ndarray, np.ndarray, int]:
    kind = metadata.schema.to_arrow_schema().field(column).type
    dim = getattr(kind, "list_size", 0)
    if not dim:
        raise _Unsupported("not a fixed-size list")
    starts: list[int] = []
    first: list[int] = []
    row = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        chunk = _plain_chunk(group, column)
        if chunk is None:
            raise _Unsupported("compressed or dictionary-encoded")
        offset, end = chunk.data_page_offset, chunk.data_page_offset + chunk.total_compressed_size
        group_rows = 0
        while offset < end:
            header, body = _struct(view[offset : offset + 1024], 0)
            body += offset
            size = header[3]
            if header[1] == _DATA_PAGE:
                values = header[5][1]
                rep = struct.unpack_from("<i", view, body)[0]
                dfn = struct.unpack_from("<i", view, body + 4 + rep)[0]
                levels = 8 + rep + dfn
            elif header[1] == _DATA_PAGE_V2:
                page = header[8]
                if page[2]:
                    raise _Unsupported("nulls in the vector column")
                values, levels = page[1], page[5] + page[6]
            else:
                raise _Unsupported(f"page type {header[1]}")
            # a null (values and slots differ) or a row cut across pages: not for this reader
            if size - levels != 4 * values or values % dim:
                raise _Unsupported("nulls or rows spanning pages")
            starts.append(body + levels)
            first.append(row + group_rows)
            group_rows += values // dim
            offset = body + size
        if group_rows != group.num_rows:
            raise _Unsupported("rows and values disagree")
        row += group_rows
    return np.asarray(starts, dtype=np.int64), np.asarray(first, dtype=np.int64), dim


#: Parquet key-value metadata of fragments whose every row group holds its vectors in one
#: uncompressed PLAIN page (``lake/schema.py`` writes them so): a row's bytes then end a known
#: distance before its column chunk ends, located from the footer alone
VECTOR_PAGES_KEY = b"lakevec.vector_pages"
ONE_PAGE_PER_ROW_GROUP = b"1"

ReadRanges = Callable[[list[str], list[int], list[int]], list[bytes]]


class RangedVectors:
    """Rows' vectors of a remote fragment file, read as byte ranges (a row is ``4 * dim``
    bytes at a place the footer tells), for a process that has not copied the file yet."""

    def __init__(
        self, read: ReadRanges, path: str, ends: np.ndarray, first_rows: np.ndarray, dim: int
    ) -> None:
        self.read = read
        self.path = path
        self._ends = ends  # byte offset where each row group's vector chunk ends
        self._first = first_rows  # first row of each row group, and the row count last
        self.dim = dim

    @classmethod
    def from_footer(
        cls, metadata: pq.FileMetaData, read: ReadRanges, path: str, column: str = "embedding"
    ) -> RangedVectors | None:
        """The reader for a file laid out for it (see :data:`VECTOR_PAGES_KEY`), else None."""
        if (metadata.metadata or {}).get(VECTOR_PAGES_KEY) != ONE_PAGE_PER_ROW_GROUP:
            return None
        dim = getattr(metadata.schema.to_arrow_schema().field(column).type, "list_size", 0)
        ends, first, row = [], [0], 0
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            chunk = _plain_chunk(group, column)
            if chunk is None:
                return None
            ends.append(chunk.data_page_offset + chunk.total_compressed_size)
            row += group.num_rows
            first.append(row)
        if not dim or not ends:
            return None
        return cls(read, path, np.asarray(ends, dtype=np.int64), np.asarray(first, dtype=np.int64), dim)

    def starts(self, rows: np.ndarray) -> np.ndarray:
        """Byte offset of each row's vector: its page's values end the column chunk."""
        group = np.searchsorted(self._first, rows, side="right") - 1
        return self._ends[group] - (self._first[group + 1] - rows) * (4 * self.dim)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return take_ranged([(self, np.asarray(rows, dtype=np.int64))])[0]


def take_ranged(parts: list[tuple[RangedVectors, np.ndarray]]) -> list[np.ndarray]:
    """The vectors of each (file, rows) pair, every row one range of one side-by-side request
    batch (a query's candidates spread over many files)."""
    if not parts:
        return []
    paths: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for reader, rows in parts:
        first = reader.starts(rows).tolist()
        paths += [reader.path] * len(first)
        starts += first
        ends += [s + 4 * reader.dim for s in first]
    data = parts[0][0].read(paths, starts, ends)
    out, i = [], 0
    for reader, rows in parts:
        chunk = b"".join(data[i : i + len(rows)])
        out.append(np.frombuffer(chunk, dtype=np.float32).reshape(len(rows), reader.dim))
        i += len(rows)
    return out
