"""Tables in: anything that speaks Arrow (or a Parquet/CSV/JSON-lines path) -> ``add`` batches.

The input is read as a stream of record batches, so memory stays at a few batches whatever
its size; each batch goes through the same validation as ``add``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakevec.errors import InvalidArgumentError
from lakevec.lake.schema import ARROW_TYPES, BULK_POOL, numbers
from lakevec.write.fragment import ColumnarMetadata

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}


def open_input(data: Any) -> Any:
    """A path becomes a pyarrow Dataset (format from its suffix), or a ParquetFile for one local
    Parquet file; anything else is returned as is. Called once per import, so the batch size,
    row count and scan share one opened input."""
    if not isinstance(data, str):
        return data
    suffix = "." + data.rsplit(".", 1)[-1].lower() if "." in data else ""
    if suffix not in _FORMATS:
        raise InvalidArgumentError(f"cannot tell the format of {data!r}: use .parquet, .csv or .jsonl")
    fmt: Any = _FORMATS[suffix]
    if fmt == "parquet" and os.path.isfile(data):
        # read a row group at a time: a dataset scan of the same file held 1.6 GB of RSS where
        # this holds 1.0 GB (1M x 384 rows), and pyarrow.dataset imports pandas
        import pyarrow.parquet as pq

        return pq.ParquetFile(data, pre_buffer=False)
    import pyarrow.dataset as ds

    if fmt == "parquet":  # without pre-buffering, a scan holds about one row group at a time
        fmt = ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False)
        )
    return ds.dataset(data, format=fmt)


def record_batches(data: Any, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``batch_size`` rows from a table-like input (see :func:`open_input`)."""
    if isinstance(data, pa.RecordBatchReader):
        reader = data
    elif isinstance(data, pa.Table):
        reader = data.to_reader(max_chunksize=batch_size)
    elif hasattr(data, "iter_batches"):  # one Parquet file: its row groups, one read ahead
        groups = [data.metadata.row_group(g).num_rows for g in range(data.metadata.num_row_groups)]
        size = min([batch_size, *groups]) or batch_size  # batches that do not straddle groups
        reader = read_ahead(data.iter_batches(batch_size=size, use_threads=True))
    elif hasattr(data, "scanner"):  # a pyarrow Dataset
        scanner = data.scanner(
            batch_size=batch_size, batch_readahead=0, fragment_readahead=0, memory_pool=BULK_POOL
        )
        reader = scanner.to_reader()
    elif hasattr(data, "collect_batches"):  # a polars LazyFrame: streamed by its engine
        reader = (b for df in data.collect_batches(chunk_size=batch_size) for b in _polars_batches(df))
    elif hasattr(data, "iter_slices"):  # a polars DataFrame: its chunks, zero-copy
        reader = _polars_batches(data)
    elif hasattr(data, "fetch_record_batch"):  # a DuckDB relation
        reader = data.fetch_record_batch(batch_size)
    elif hasattr(data, "__arrow_c_stream__"):  # pandas DataFrames and other producers
        reader = pa.RecordBatchReader.from_stream(data)
    else:
        raise InvalidArgumentError(
            f"expected an Arrow table or stream, or a file path, got {type(data).__name__}"
        )
    return rebatch(reader, batch_size)


def _polars_batches(df: Any) -> Iterator[pa.RecordBatch]:
    import polars as pl

    # the newest level exports string views as they are instead of copying them to large_string
    return iter(df.to_arrow(compat_level=pl.CompatLevel.newest()).to_batches())


def rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of at most ``size`` rows that copy as little as they can: an input batch of at
    least half that size goes out as it is (sliced when larger), and smaller ones are joined
    until the next would not fit. A batch that straddled input chunks would copy its vectors
    (128 MiB at the default size) just to make them contiguous."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            piece = batch.slice(start, size)
            if pending and rows + piece.num_rows > size:
                yield _joined(pending)
                pending, rows = [], 0
            pending.append(piece)
            rows += piece.num_rows
            if len(pending) == 1 and rows >= size // 2:
                yield piece
                pending, rows = [], 0
    if pending:
        yield _joined(pending)


def read_ahead(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches, the next one decoded on a thread while this one is used (Parquet decoding
    releases the GIL; it was 3.4 of 4.8 s of a 1M-row import, on the importing thread)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakevec-read")
    try:
        pending = pool.submit(next, batches, None)
        while True:
            batch = pending.result()
            if batch is None:
                return
            pending = pool.submit(next, batches, None)
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


TARGET_BATCH_BYTES = 128 << 20  # written as two 64 MiB fragments side by side (write/commit.py)


def default_batch_rows(data: Any, embedding_column: str | None) -> int:
    """Rows per batch so one batch of vectors is about 128 MiB (fewer, larger fragments)."""
    schema = getattr(data, "schema_arrow", None)  # a ParquetFile
    if schema is None:
        schema = data.schema if isinstance(getattr(data, "schema", None), pa.Schema) else None
    dim = 384
    if schema is not None and embedding_column in schema.names:
        kind = schema.field(embedding_column).type
        if pa.types.is_fixed_size_list(kind):
            dim = kind.list_size
    return int(min(100_000, max(1_000, TARGET_BATCH_BYTES // (4 * dim))))


def row_count(data: Any) -> int | None:
    """Rows in the input when that is cheap to know (for the progress bar), else None."""
    if isinstance(data, pa.Table):
        return data.num_rows
    if hasattr(data, "iter_batches"):  # a ParquetFile
        return data.metadata.num_rows
    if hasattr(data, "count_rows"):  # a pyarrow Dataset: free from Parquet footers only
        import pyarrow.dataset as ds

        return data.count_rows() if isinstance(data.format, ds.ParquetFileFormat) else None
    if hasattr(data, "height"):  # a polars DataFrame
        return data.height
    if hasattr(data, "shape") and hasattr(data, "columns"):  # pandas
        return int(data.shape[0])
    return None


def embeddings_from(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A (n, dim) float32 array from a list, large_list or fixed_size_list column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)):
        raise InvalidArgumentError(f"embedding column must be a list of numbers, got {kind}")
    if column.null_count:
        raise InvalidArgumentError("embedding column has missing values")
    lengths = numbers(pc.list_value_length(column))
    if len(lengths) and (lengths.min() != lengths.max() or lengths[0] == 0):
        raise InvalidArgumentError("embeddings in one column must all have the same, non-zero length")
    values = numbers(pc.list_flatten(column)).astype(np.float32, copy=False)
    return values.reshape(len(column), -1)


def metadata_from(batch: pa.RecordBatch, columns: list[str]) -> list[dict | None] | None:
    """One metadata dict per row from the named columns (null cells are left out)."""
    if not columns:
        return None
    rows = batch.select(columns).to_pylist()
    return [{k: v for k, v in row.items() if v is not None} or None for row in rows]


def _kind(kind: pa.DataType) -> str | None:
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind):
        return "float"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "str"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
        inner = _kind(kind.value_type)
        return f"list_{inner}" if inner in ("bool", "int", "float", "str") else None
    return None


def columnar_metadata(batch: pa.RecordBatch, columns: list[str]) -> ColumnarMetadata | None:
    """The metadata columns as stored, checked with Arrow compute; ``None`` if any column needs
    the row-by-row path (an unsupported type or a bad value: that path raises the clear error)."""
    out: dict[tuple[str, str], pa.Array] = {}
    for name in columns:
        if not isinstance(name, str) or not name or name.startswith("#"):
            return None
        column = batch.column(name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        kind = _kind(column.type)
        if kind is None:
            return None
        if column.null_count == len(column):
            continue
        try:
            column = column.cast(ARROW_TYPES[kind])  # safe: an out-of-range uint64 raises
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        values = column
        if kind.startswith("list_"):
            lengths = pc.list_value_length(column)
            if pc.any(pc.equal(lengths, 0)).as_py():
                return None  # empty lists are an error
            values = pc.list_flatten(column)
            if values.null_count:
                return None
        if kind.endswith("float") and len(values) and not pc.all(pc.is_finite(values.drop_null())).as_py():
            return None
        out[(name, kind)] = column
    return ColumnarMetadata(out, batch.num_rows)


@dataclass(frozen=True)
class Columns:
    """Which input columns hold what; metadata ``None`` means every other column."""

    ids: str = "id"
    documents: str | None = "document"
    embeddings: str | None = "embedding"
    uris: str | None = None
    metadatas: list[str] | None = None


def prepare_batch(
    prepare_rows: Callable[..., tuple], batch: pa.RecordBatch, op: str, columns: Columns
) -> tuple:
    """One input batch through the checks of ``add``/``upsert`` (``prepare_rows`` is the
    collection's): (ids, embeddings, documents, uris, metadata)."""
    names = batch.schema.names
    named = {columns.ids, columns.documents, columns.embeddings, columns.uris} - {None}

    def column(name: Any) -> Any:
        # add: string columns stay Arrow arrays, checked with Arrow compute; upsert merges per row
        return batch.column(name) if op == "add" else batch.column(name).to_pylist()

    if columns.ids not in names:
        raise InvalidArgumentError(f"the table has no id column {columns.ids!r}")
    meta_columns = (
        columns.metadatas if columns.metadatas is not None else [n for n in names if n not in named]
    )
    # add: typed Arrow columns go straight to the fragment; upsert merges per row
    columnar = columnar_metadata(batch, meta_columns) if op == "add" else None
    row_ids, emb, metas, docs, row_uris = prepare_rows(
        op,
        column(columns.ids),
        embeddings_from(batch.column(columns.embeddings)) if columns.embeddings in names else None,
        metadata_from(batch, meta_columns) if columnar is None else None,
        column(columns.documents) if columns.documents in names else None,
        column(columns.uris) if columns.uris in names else None,
        None,
    )
    return row_ids, emb, docs, row_uris, columnar if columnar is not None else metas
