"""Validated records -> an Arrow table with the row schema (:mod:`lakevec.lake.schema`):
metadata dicts become one typed column per (key, kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakevec.lake.manifest import MetadataField
from lakevec.lake.schema import ARROW_TYPES, from_numpy, strings
from lakevec.types import SparseVector


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
    if kind is not None:
        return kind
    if type(value) is SparseVector:
        return "sparse"
    return "list_" + _KIND_BY_TYPE[type(value[0])]


def _arrow_values(kind: str, values: list[Any]) -> pa.Array:
    if kind == "sparse":
        values = [
            None if v is None else {"indices": v.indices, "values": v.values, "tokens": v.labels}
            for v in values
        ]
    return pa.array(values, type=ARROW_TYPES[kind])


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
    columns = {by_pair[pair].name: _arrow_values(pair[1], vals) for pair, vals in values.items()}
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
