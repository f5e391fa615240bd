"""Records -> an Arrow table with the row schema -> a Parquet fragment; deletion files.

Row schema: ``id`` string, ``document`` string, ``uri`` string, ``embedding``
fixed_size_list<float32>[dim], ``metadata`` struct with one typed field per (key, kind), and
``_seq``, the row's insertion order (kept across updates, so reads order rows as Chroma does).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakevec.lake.manifest import MetadataField

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
META_PREFIX = "m:"  # flattened metadata columns in memory: "m:<field name>"


@dataclass
class ColumnarMetadata:
    """Metadata that arrived as typed Arrow columns (``add_table``): one array per (key, kind).
    It goes to the fragment as it is, without a detour through Python dicts."""

    columns: dict[tuple[str, str], pa.Array]
    length: int

    def __len__(self) -> int:
        return self.length

    def take(self, index: np.ndarray) -> ColumnarMetadata:
        rows = pa.array(index, type=pa.int64())
        return ColumnarMetadata({k: v.take(rows) for k, v in self.columns.items()}, len(index))


@dataclass
class RowBatch:
    """Validated rows ready to be written; every list has one entry per id."""

    ids: list[str] | pa.Array  # an import's columns stay Arrow string arrays
    embeddings: np.ndarray  # (n, dim) float32, C-contiguous
    documents: list[str | None] | pa.Array
    uris: list[str | None] | pa.Array
    metadatas: list[dict[str, Any] | None] | ColumnarMetadata
    seq: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.ids)


_KIND_BY_TYPE = {str: "str", int: "int", float: "float", bool: "bool"}


def kind_of(value: Any) -> str:
    """The kind of a validated metadata value (exact Python types, so bool is not int)."""
    kind = _KIND_BY_TYPE.get(type(value))
    return kind if kind is not None else "list_" + _KIND_BY_TYPE[type(value[0])]


def allocate_fields(
    fields: tuple[MetadataField, ...], pairs: set[tuple[str, str]]
) -> tuple[MetadataField, ...]:
    """Add a field for every new (key, kind). The first kind of a key gets the key as its name,
    so ``metadata.genre`` reads naturally in SQL; other kinds get ``key::kind``."""
    known = {(f.key, f.kind) for f in fields}
    taken = {f.name for f in fields}
    out = list(fields)
    for key, kind in sorted(pairs - known):
        name = key if key not in taken else f"{key}::{kind}"
        n = 2
        while name in taken:
            name, n = f"{key}::{kind}::{n}", n + 1
        taken.add(name)
        out.append(MetadataField(name=name, key=key, kind=kind))
    return tuple(out)


def metadata_columns(
    metadatas: list[dict[str, Any] | None] | ColumnarMetadata, fields: tuple[MetadataField, ...]
) -> tuple[tuple[MetadataField, ...], dict[str, pa.Array]]:
    """Split metadata dicts into one typed column per field (the fields grow as needed)."""
    if isinstance(metadatas, ColumnarMetadata):
        fields = allocate_fields(fields, set(metadatas.columns))
        by_pair = {(f.key, f.kind): f for f in fields}
        return fields, {by_pair[pair].name: array for pair, array in metadatas.columns.items()}
    values = _uniform(metadatas)
    if values is None:
        values = _by_pair(metadatas)
    fields = allocate_fields(fields, set(values))
    by_pair = {(f.key, f.kind): f for f in fields}
    columns = {by_pair[pair].name: pa.array(vals, type=ARROW_TYPES[pair[1]]) for pair, vals in values.items()}
    return fields, columns


def _uniform(metadatas: list[dict[str, Any] | None]) -> dict[tuple[str, str], list[Any]] | None:
    """The common batch: every row has the same keys, each with one scalar type. Its columns
    come from one comprehension per key (3.5x faster than visiting every value), or None."""
    first = metadatas[0] if metadatas else None
    if not first:
        return None
    keys = list(first)
    width = len(keys)
    try:
        if any(len(md) != width for md in metadatas):  # a None row raises TypeError
            return None
        columns = {key: [md[key] for md in metadatas] for key in keys}
    except (KeyError, TypeError):
        return None
    out = {}
    for key, column in columns.items():
        kinds = set(map(type, column))
        kind = _KIND_BY_TYPE.get(kinds.pop()) if len(kinds) == 1 else None
        if kind is None:  # mixed types, lists or None values: the general path
            return None
        out[(key, kind)] = column
    return out


def _by_pair(metadatas: list[dict[str, Any] | None]) -> dict[tuple[str, str], list[Any]]:
    n = len(metadatas)
    values: dict[tuple[str, str], list[Any]] = {}
    for i, md in enumerate(metadatas):
        if not md:
            continue
        for key, value in md.items():
            if value is None:
                continue
            col = values.get((key, kind := kind_of(value)))
            if col is None:
                col = values[(key, kind)] = [None] * n
            col[i] = value
    return values


def build_table(
    batch: RowBatch, fields: tuple[MetadataField, ...]
) -> tuple[pa.Table, tuple[MetadataField, ...]]:
    """The fragment table for ``batch`` and the collection's (possibly extended) field list."""
    fields, meta = metadata_columns(batch.metadatas, fields)
    dim = batch.embeddings.shape[1]
    flat = from_numpy(batch.embeddings.reshape(-1))
    columns: dict[str, pa.Array] = {
        "id": strings(batch.ids),
        "document": strings(batch.documents),
        "uri": strings(batch.uris),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
    }
    if meta:
        order = [f.name for f in fields if f.name in meta]
        columns["metadata"] = pa.StructArray.from_arrays([meta[k] for k in order], names=order)
    columns["_seq"] = from_numpy(batch.seq.astype(np.int64, copy=False))
    return pa.table(columns), fields


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


def write_parquet(table: pa.Table, sink: pa.NativeFile) -> None:
    # zstd gains ~9% on float vectors for 2x the write time; text and metadata compress well
    compression = {name: "none" if name == "embedding" else "zstd" for name in table.column_names}
    pq.write_table(
        required_vectors(table),
        sink,
        compression=compression,
        use_dictionary=False,
        write_statistics=["id", "_seq"],
        # the writer holds about two copies of a row group's vectors (values and levels):
        # 8k rows keep that near 25 MB per writer thread instead of 120 MB, at the same speed
        row_group_size=8 * 1024,
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
