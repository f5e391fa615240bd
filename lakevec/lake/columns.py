"""A remote fragment's columns but its vectors, read by byte range while this process has no
copy of the file.

A snapshot of a remote collection reads each file's footer first (one GET of its last bytes).
A query's handful of result rows then read only the row groups they live in; a reader that
needs whole columns (a filter, a ``get``, a lookup by id) reads every row group's chunks in one
batch. 1M x 384 on a local S3 server: the columns a snapshot keeps are 2 % of the files, and a
cold query needs a few row groups of them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakevec.errors import corrupt
from lakevec.lake.schema import flatten

TAIL_BYTES = 64 << 10  # a footer (3.8 KB for 6 row groups) and what precedes it, in one GET
VECTORS = "embedding"

ReadRanges = Callable[[list[str], list[int], list[int]], list[bytes]]


def column_ranges(
    footer: pq.FileMetaData, skip: str, groups: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """Byte ranges of every column chunk but ``skip``'s (of ``groups``, or all row groups),
    adjacent ones joined."""
    ranges: list[tuple[int, int]] = []
    for g in range(footer.num_row_groups) if groups is None else groups:
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


def columns_but_vectors(
    source: pa.NativeFile,
    full: str,
    footer: pq.FileMetaData | None = None,
    groups: Sequence[int] | None = None,
) -> pa.Table:
    """Every column of a fragment file but its vectors (of ``groups``, or the whole file)."""
    try:
        parquet = pq.ParquetFile(source, metadata=footer)
        names = [c for c in parquet.schema_arrow.names if c != VECTORS]
        if groups is None:
            return parquet.read(columns=names)
        return parquet.read_row_groups(list(groups), columns=names)
    except (pa.ArrowException, ValueError) as exc:
        raise corrupt(full, "fragment", exc) from None


class RangedColumns:
    """One remote file's footer, the column chunks its last bytes held, and the row groups
    decoded so far."""

    def __init__(self, path: str, size: int, footer: pq.FileMetaData, tail_start: int, tail: bytes) -> None:
        self.path = path
        self.size = size
        self.footer = footer
        self._tail_start = tail_start
        # of the tail, only the column chunks it holds (not the footer, not vectors): a
        # thousand small fragments would otherwise hold 256 KB each until their columns load
        self._held = [
            (a, tail[a - tail_start : b - tail_start])
            for a, b in ((max(a, tail_start), min(b, size)) for a, b in column_ranges(footer, VECTORS))
            if a < b
        ]
        counts = [footer.row_group(g).num_rows for g in range(footer.num_row_groups)]
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
        #: decoded row groups (flattened, as a fragment's table), by row group number
        self.groups: dict[int, dict[str, pa.ChunkedArray]] = {}

    @property
    def num_rows(self) -> int:
        return int(self.footer.num_rows)

    def group_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, rows, side="right") - 1

    def missing(self, groups: Sequence[int] | None) -> list[tuple[int, int]]:
        """Byte ranges of these row groups' columns (None: all) that the tail did not hold."""
        end = self._tail_start
        return [(a, min(b, end)) for a, b in column_ranges(self.footer, VECTORS, groups) if a < end]

    def decode(self, parts: list[tuple[int, bytes]], groups: Sequence[int] | None) -> pa.Table:
        """The columns of ``groups`` (None: all), from the tail and the ranges read for them."""
        buffer = pa.allocate_buffer(self.size)  # pages never written stay unallocated
        view = memoryview(buffer).cast("B")
        for a, part in [*self._held, *parts]:
            view[a : a + len(part)] = part
        try:
            return columns_but_vectors(pa.BufferReader(buffer), self.path, self.footer, groups)
        finally:
            view.release()


def _read(
    read_ranges: ReadRanges, wanted: list[tuple[RangedColumns, list[tuple[int, int]]]]
) -> list[list[tuple[int, bytes]]]:
    """The byte ranges wanted of each file, all in one batch of GETs: (start, bytes) per file."""
    paths, starts, ends = [], [], []
    for item, ranges in wanted:
        for a, b in ranges:
            paths.append(item.path)
            starts.append(a)
            ends.append(b)
    data = iter(read_ranges(paths, starts, ends) if paths else [])
    return [[(a, next(data)) for a, _ in ranges] for _, ranges in wanted]


def read_footers(read_ranges: ReadRanges, paths: list[str], sizes: list[int]) -> list[RangedColumns]:
    """Each file's footer and last TAIL_BYTES, one batch of GETs for all."""
    tails = [max(0, size - TAIL_BYTES) for size in sizes]
    ends = read_ranges(paths, tails, sizes)
    out = []
    for path, size, tail, end in zip(paths, sizes, tails, ends):
        try:
            length = struct.unpack_from("<I", end, len(end) - 8)[0] + 8
            if length > len(end):  # a footer larger than the tail read
                tail = size - length
                end = read_ranges([path], [tail], [size])[0]
            footer = pq.read_metadata(pa.BufferReader(end[-length:]))
        except (pa.ArrowException, ValueError, struct.error) as exc:
            raise corrupt(path, "fragment", exc) from None
        out.append(RangedColumns(path, size, footer, tail, end))
    return out


def read_tables(read_ranges: ReadRanges, items: list[RangedColumns]) -> list[pa.Table]:
    """Every row group's columns of each file (flattened), one batch of GETs for all."""
    parts = _read(read_ranges, [(item, item.missing(None)) for item in items])
    return [flatten(item.decode(pieces, None)) for item, pieces in zip(items, parts)]


def read_groups(read_ranges: ReadRanges, wanted: list[tuple[RangedColumns, list[int]]]) -> None:
    """Decode the given row groups of each file into its ``groups``, one batch of GETs for all
    (a query's results, spread over many files)."""
    jobs = [(item, [g for g in groups if g not in item.groups]) for item, groups in wanted]
    jobs = [(item, groups) for item, groups in jobs if groups]
    parts = _read(read_ranges, [(item, item.missing(groups)) for item, groups in jobs])
    for (item, groups), pieces in zip(jobs, parts):
        table = flatten(item.decode(pieces, groups))
        start = 0
        for g in groups:
            n = int(item.starts[g + 1] - item.starts[g])
            piece = table.slice(start, n)
            item.groups[g] = dict(zip(piece.column_names, piece.columns))
            start += n
