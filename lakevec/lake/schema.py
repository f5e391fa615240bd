"""The row schema and the file layout every reader and writer shares.

A fragment is a Parquet file with the columns ``id`` string, ``document`` string, ``uri``
string, ``embedding`` fixed_size_list<float32>[dim], ``metadata`` struct with one typed field
per (key, kind), and ``_seq``, the row's insertion order (kept across updates, so reads order
rows as Chroma does). A deletion file is an Arrow IPC file of sorted uint32 row numbers.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakevec.lake.manifest import MetadataField
from lakevec.lake.vectors import ONE_PAGE_PER_ROW_GROUP, VECTOR_PAGES_KEY
from lakevec.types import SparseVector

SCALAR_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
}
ARROW_TYPES: dict[str, pa.DataType] = {
    **SCALAR_TYPES,
    **{f"list_{k}": pa.list_(t) for k, t in SCALAR_TYPES.items()},
}
#: Chroma's sparse vectors as metadata values (the indices are u32, as in Chroma)
SPARSE_ARROW = pa.struct(
    [
        pa.field("indices", pa.list_(pa.uint32())),
        pa.field("values", pa.list_(pa.float32())),
        pa.field("tokens", pa.list_(pa.string())),
    ]
)
ARROW_TYPES["sparse"] = SPARSE_ARROW
ROW_GROUP_ROWS = 8 * 1024
META_PREFIX = "m:"  # flattened metadata columns in memory: "m:<field name>"


def from_numpy(values: np.ndarray) -> pa.Array:
    """A zero-copy Arrow array over a numeric numpy array (``pa.array`` imports pandas to
    check for its types: 0.2 s of a process that never needs it)."""
    values = np.ascontiguousarray(values)
    kind = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def strings(values: list[str | None] | pa.Array) -> pa.Array:
    """A string column from a list, or an Arrow array as it is (a table import's columns)."""
    return values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())


def required_vectors(table: pa.Table) -> pa.Table:
    """The vector column declared without nulls (list and values): Parquet then encodes it
    without per-value definition levels (pyarrow: 1.76x on 100k x 384 vectors alone, 1.16x
    beside an id column), and readers see the same fixed_size_list<float32>. Tables holding a
    null vector stay as they are."""
    i = table.schema.get_field_index("embedding")
    if i < 0:
        return table
    column = table.column(i)
    kind = pa.list_(pa.field("element", pa.float32(), nullable=False), column.type.list_size)
    if column.type == kind and not table.schema.field(i).nullable:
        return table
    if column.null_count or any(chunk.values.null_count for chunk in column.chunks):
        return table
    return table.set_column(i, pa.field("embedding", kind, nullable=False), column.cast(kind))


def _bulk_pool() -> pa.MemoryPool:
    """The pool for Parquet encoding and import scans, whose large buffers come and go:
    jemalloc where the build has it. mimalloc, Arrow's default, kept them resident (1M-row
    import from Polars: 100 MB more peak RSS; a Parquet scan alone: 1,054 -> 537-687 MB RSS
    and 4.0 -> 2.8 s)."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


BULK_POOL = _bulk_pool()


def _leaves(name: str, typ: pa.DataType) -> list[str]:
    """Parquet's column paths under a field (pyarrow's per-column options name leaves)."""
    if pa.types.is_struct(typ):
        return [p for child in typ for p in _leaves(f"{name}.{child.name}", child.type)]
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return _leaves(f"{name}.list.element", typ.value_type)
    return [name]


def write_parquet(table: pa.Table, sink: pa.NativeFile) -> None:
    # zstd gains ~9% on float vectors for 2x the write time, and a compressed page cannot be
    # read by row (lake/vectors.py); text and metadata compress well
    compression = {
        leaf: "none" if field.name == "embedding" else "zstd"
        for field in table.schema
        for leaf in _leaves(field.name, field.type)
    }
    table = required_vectors(table)
    i = table.schema.get_field_index("embedding")
    if i >= 0 and not table.schema.field(i).nullable:
        # one page per row group: a remote reader locates a row's vector from the footer alone
        # (lake/vectors.py, RangedVectors), with no page header to fetch first
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), VECTOR_PAGES_KEY: ONE_PAGE_PER_ROW_GROUP}
        )
    pq.write_table(
        table,
        sink,
        compression=compression,
        use_dictionary=False,
        write_statistics=["id", "_seq"],
        # the writer holds about two copies of a row group's vectors (values and levels):
        # 8k rows keep that near 25 MB per writer thread instead of 120 MB, at the same speed
        row_group_size=ROW_GROUP_ROWS,
        data_page_size=1 << 30,  # above any row group's vectors (8k x 4,096 floats: 128 MiB)
        memory_pool=BULK_POOL,
    )


def flatten(table: pa.Table) -> pa.Table:
    """The in-memory shape readers cache: no embeddings, metadata fields as ``m:<name>`` columns."""
    cols = {name: table.column(name) for name in ("id", "document", "uri", "_seq")}
    if "metadata" in table.column_names:
        struct = table.column("metadata").combine_chunks()
        # flatten() folds a null struct into its children (a merged fragment may have some)
        for field, child in zip(struct.type, struct.flatten()):
            cols[META_PREFIX + field.name] = child
    return pa.table(cols)


def numbers(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean Arrow array as numpy, zero-copy where it can be (``to_numpy``
    imports pandas, 0.2-0.3 s of a cold process)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if array.null_count or not pa.types.is_primitive(array.type):
        return array.to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(array.type):  # bit-packed: one byte per value
        return numbers(array.cast(pa.uint8())).view(np.bool_)
    dtype = np.dtype(array.type.to_pandas_dtype())
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize
    )


def embeddings_of(table: pa.Table) -> np.ndarray:
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return numbers(column.flatten()).reshape(-1, dim)  # flatten() honours slicing


def deletion_bytes(rows: np.ndarray) -> bytes:
    sink = io.BytesIO()
    table = pa.table({"row": pa.array(np.sort(rows).astype(np.uint32))})
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_deletion(data: bytes) -> np.ndarray:
    return numbers(pa.ipc.open_file(pa.BufferReader(data)).read_all().column("row"))


def metadata_dicts(table: pa.Table, fields: tuple[MetadataField, ...]) -> list[dict | None]:
    """One dict per row (None when a row has no metadata), keys with their stored types."""
    n = table.num_rows
    columns = {}
    for f in fields:
        column = table.column(META_PREFIX + f.name) if META_PREFIX + f.name in table.column_names else None
        if column is not None and column.null_count < n:
            columns[META_PREFIX + f.name] = column.to_pylist()
    return dicts_from_columns(columns, fields, n)


def dicts_from_columns(
    columns: dict[str, list], fields: tuple[MetadataField, ...], n: int
) -> list[dict | None]:
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for f in fields:
        values = columns.get(META_PREFIX + f.name)
        if values is None:
            continue
        if f.kind == "sparse":
            values = [
                None if v is None else SparseVector(v["indices"], v["values"], v["tokens"]) for v in values
            ]
        for row, value in zip(out, values):
            if value is not None:
                row[f.key] = value
    return [row or None for row in out]
