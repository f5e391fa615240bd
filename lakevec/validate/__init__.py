"""Argument checks at the API boundary: each returns normalized input or raises.

Messages and exception classes follow chromadb 1.5.9, so code written against Chroma catches
ours; :class:`InvalidArgumentError` is also a ``ValueError``. Where Chroma accepts bad data
(NaN or infinite embeddings, metadata integers beyond 64 bits) we reject it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakevec.errors import DuplicateIDError, InvalidArgumentError
from lakevec.read.sql_filter import check_sql, validate_where_sql
from lakevec.validate.sparse import sparse_vector

INCLUDE_VALUES = ("documents", "embeddings", "metadatas", "distances", "uris", "data")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_INT64 = (-(2**63), 2**63 - 1)
_WHERE_OPS = ("$gt", "$gte", "$lt", "$lte", "$ne", "$eq", "$in", "$nin", "$contains", "$not_contains")
# lakevec's extensions to Chroma's where (evaluated by DuckDB); $not is a logical operator
_EXTENSION_OPS = ("$regex", "$not_regex", "$like", "$ilike", "$exists")
_TEXT_OPS = ("$regex", "$not_regex", "$like", "$ilike")
# the Search API's keys for a row's document and id, usable in any where
_DOCUMENT_KEY_OPS = ("$contains", "$not_contains", "$regex", "$not_regex", "$like", "$ilike")
_ID_KEY_OPS = ("$eq", "$ne", "$in", "$nin")
_DOC_OPS = ("$contains", "$not_contains", "$regex", "$not_regex", "$and", "$or")


def validate_collection_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError(
            "Validation error: name: Expected a name containing 3-512 characters from "
            "[a-zA-Z0-9._-], starting and ending with a character in [a-zA-Z0-9]. "
            f"Got: {name}"
        )
    return name


def one_to_many(value: Any) -> Any:
    """Chroma accepts a single id / document / metadata where a list is expected."""
    if isinstance(value, (str, dict)):
        return [value]
    return value


def string_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """A column of strings (any Arrow string type, or all null) as ``pa.string()``; None when
    it holds anything else (the row-by-row checks then name the bad value)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    textual = (pa.types.is_null, pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    return column.cast(pa.string()) if any(test(column.type) for test in textual) else None


def _id_column(column: pa.Array | pa.ChunkedArray) -> pa.Array | None:
    """The ids of a table column checked with Arrow compute, or None if any check fails."""
    ids = string_column(column)
    if ids is None or len(ids) == 0 or ids.null_count:
        return None
    if pc.min(pc.binary_length(ids)).as_py() == 0 or pc.count_distinct(ids).as_py() != len(ids):
        return None
    return ids


def validate_ids(ids: Any, *, allow_empty: bool = False) -> list[str] | pa.Array:
    """A list of unique, non-empty string ids; a table's id column stays an Arrow array."""
    if isinstance(ids, (pa.Array, pa.ChunkedArray)):
        checked = _id_column(ids)
        if checked is not None:
            return checked
        ids = ids.to_pylist()
    ids = one_to_many(ids)
    if isinstance(ids, np.ndarray):
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)):
        raise InvalidArgumentError(f"Expected IDs to be a list, got {type(ids).__name__}")
    if not ids and not allow_empty:
        raise InvalidArgumentError(f"Expected IDs to be a non-empty list, got {len(ids)} IDs")
    for id_ in ids:
        if not isinstance(id_, str):
            raise InvalidArgumentError(f"Expected ID to be a str, got {id_!r}")
        if not id_:
            raise InvalidArgumentError("Empty ID, ID must have at least one character")
    ids = list(ids)
    if len(set(ids)) != len(ids):
        dups = sorted(k for k, c in Counter(ids).items() if c > 1)
        shown = ", ".join(dups[:10]) + (f", ..., ({len(dups) - 10} more)" if len(dups) > 10 else "")
        raise DuplicateIDError(f"Expected IDs to be unique, found duplicates of: {shown}")
    return ids


def validate_embeddings(embeddings: Any, count: int, dimension: int | None) -> np.ndarray:
    """A C-contiguous float32 (n, dim) array of finite values matching the collection."""
    if isinstance(embeddings, np.ndarray):
        array = embeddings
    else:
        if not isinstance(embeddings, (list, tuple)) or len(embeddings) == 0:
            raise InvalidArgumentError(
                f"Expected Embeddings to be non-empty list or numpy array, got {embeddings!r}"
            )
        if all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in embeddings):
            embeddings = [embeddings]  # one embedding given flat
        try:
            array = np.asarray(embeddings, dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                "Expected each embedding to be a list of numbers of the same length"
            ) from exc
    if array.ndim == 1 and array.size and count == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] == 0:
        raise InvalidArgumentError(
            f"Expected embeddings to be a 2-d list or array of numbers, got shape {array.shape}"
        )
    if array.dtype.kind not in "fiu":
        raise InvalidArgumentError(f"Expected embeddings of numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.shape[0] != count:
        raise InvalidArgumentError(f"Unequal lengths for fields: ids: {count}, embeddings: {array.shape[0]}")
    if dimension is not None and array.shape[1] != dimension:
        raise InvalidArgumentError(
            f"Collection expecting embedding with dimension of {dimension}, got {array.shape[1]}"
        )
    # a row sum (one BLAS pass, 2.5x faster than isfinite on a batch) is NaN or infinite if any
    # of the row's values is, or if it overflows: then every value is checked. A few rows (a
    # query) are checked directly: the ones vector would cost more than the check
    if array.size <= 4096:
        finite = bool(np.isfinite(array).all())
    else:
        row_sums = array @ np.ones(array.shape[1], dtype=np.float32)
        finite = bool(np.isfinite(row_sums).all()) or bool(np.isfinite(array).all())
    if not finite:
        raise InvalidArgumentError("Embeddings must not contain NaN or Infinity values")
    return array


def _check_scalar(key: str, value: Any) -> None:
    kind = type(value)
    if kind is str or kind is bool:
        return
    if kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            raise InvalidArgumentError(f"Metadata value for key {key!r} does not fit in 64 bits")
        return
    if kind is float:
        if not math.isfinite(value):
            raise InvalidArgumentError(f"Metadata value for key {key!r} must be finite, got {value}")
        return
    raise InvalidArgumentError(
        f"Expected metadata value to be a str, int, float, bool, list, or None, got {value!r} "
        f"which is a {type(value).__name__}"
    )


def _normalize_value(value: Any) -> Any:
    """Plain Python values for numpy scalars/arrays, tuples and subclasses of the scalar types."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, np.ndarray)):
        return [_normalize_value(v) for v in value]
    if isinstance(value, list):
        return [_normalize_value(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


_PLAIN = (str, int, float, bool)


def validate_metadata(metadata: Any, *, allow_none_values: bool) -> dict[str, Any] | None:
    """A metadata dict, or None. ``None`` values (delete the key) only in update/upsert."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidArgumentError(f"Expected metadata to be a dict or None, got {metadata!r}")
    if not metadata:
        raise InvalidArgumentError("Expected metadata to be a non-empty dict, got 0 metadata attributes")
    out = None  # copied only if a value needs normalizing
    for key, value in metadata.items():
        if type(key) is not str or not key or key[0] == "#":
            if not isinstance(key, str):
                raise InvalidArgumentError(f"Expected metadata key to be a str, got {key!r}")
            raise InvalidArgumentError(f"Metadata key {key!r} is reserved or empty")
        if type(value) not in _PLAIN and value is not None:
            sparse = sparse_vector(value, f"metadata key {key!r}")
            value = sparse if sparse is not None else _normalize_value(value)
            out = out if out is not None else dict(metadata)
            out[key] = value
            if sparse is not None:
                continue
        if value is None:
            if not allow_none_values:
                raise InvalidArgumentError(
                    f"Metadata value for key {key!r} is None; None deletes a key and is only "
                    "allowed in update and upsert"
                )
        elif type(value) is list:
            if not value:
                raise InvalidArgumentError(f"Expected metadata list value for key {key!r} to be non-empty")
            first = type(value[0])
            if first not in _PLAIN or any(type(v) is not first for v in value):
                raise InvalidArgumentError(
                    f"Expected metadata list value for key {key!r} to contain only str, int, "
                    f"float, or bool and all elements must be the same type, got {value!r}"
                )
            for v in value:
                _check_scalar(key, v)
        else:
            _check_scalar(key, value)
    return out if out is not None else metadata


def validate_collection_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if isinstance(metadata, dict) and not metadata:
        raise InvalidArgumentError("Validation error: metadata: Metadata cannot be empty")
    return validate_metadata(metadata, allow_none_values=False)


def validate_documents(
    documents: Any, count: int, *, field: str = "documents"
) -> list[str | None] | pa.Array:
    if isinstance(documents, (pa.Array, pa.ChunkedArray)):
        checked = string_column(documents)
        if checked is not None and len(checked) == count:
            return checked
        documents = documents.to_pylist()
    documents = one_to_many(documents)
    if not isinstance(documents, (list, tuple)):
        raise InvalidArgumentError(f"Expected {field} to be a list, got {type(documents).__name__}")
    if len(documents) != count:
        raise InvalidArgumentError(f"Unequal lengths for fields: ids: {count}, {field}: {len(documents)}")
    for d in documents:
        if d is not None and not isinstance(d, str):
            raise InvalidArgumentError(f"Expected {field[:-1]} to be a str, got {d!r}")
    return list(documents)


def validate_metadatas(metadatas: Any, count: int, *, allow_none_values: bool) -> list[dict | None]:
    metadatas = one_to_many(metadatas)
    if not isinstance(metadatas, (list, tuple)):
        raise InvalidArgumentError(f"Expected metadatas to be a list, got {type(metadatas).__name__}")
    if len(metadatas) != count:
        raise InvalidArgumentError(f"Unequal lengths for fields: ids: {count}, metadatas: {len(metadatas)}")
    return [validate_metadata(m, allow_none_values=allow_none_values) for m in metadatas]


def validate_where(where: Any) -> None:
    if not isinstance(where, dict):
        raise InvalidArgumentError(f"Expected where to be a dict, got {where}")
    if len(where) != 1:
        raise InvalidArgumentError(f"Expected where to have exactly one operator, got {where}")
    ((key, value),) = where.items()
    if not isinstance(key, str):
        raise InvalidArgumentError(f"Expected where key to be a str, got {key}")
    if key in ("$and", "$or"):
        if not isinstance(value, list):
            raise InvalidArgumentError(
                f"Expected where value for $and or $or to be a list of where expressions, got {value}"
            )
        if len(value) <= 1:
            raise InvalidArgumentError(
                "Expected where value for $and or $or to be a list with at least two where "
                f"expressions, got {value}"
            )
        for clause in value:
            validate_where(clause)
        return
    if key == "$not":
        validate_where(value)
        return
    if key.startswith("$"):
        raise InvalidArgumentError(
            "Expected where key to be a metadata field name or a logical operator ($and, $or, $not), "
            f"got {key}"
        )
    if not isinstance(value, dict):
        value = {"$eq": value}
    if len(value) != 1:
        raise InvalidArgumentError(f"Expected operator expression to have exactly one operator, got {value}")
    ((op, operand),) = value.items()
    allowed = {"#document": _DOCUMENT_KEY_OPS, "#id": _ID_KEY_OPS}.get(key, _WHERE_OPS + _EXTENSION_OPS)
    if op not in allowed:
        raise InvalidArgumentError(
            f"Expected where operator on {key} to be one of " + ", ".join(allowed) + f", got {op}"
        )
    if key in ("#document", "#id") and not all(isinstance(x, str) for x in _listed(operand)):
        raise InvalidArgumentError(f"Expected str operands for {op} on {key}, got {operand!r}")
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise InvalidArgumentError(
                f"Expected operand value to be an list for operator {op}, got {operand}"
            )
        if not operand or not all(type(x) is type(operand[0]) for x in operand):
            raise InvalidArgumentError(
                "Expected where operand value to be a non-empty list, and all values to be of the "
                f"same type got {operand}"
            )
        for x in operand:
            _check_operand(op, x)
        return
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise InvalidArgumentError(
                f"Expected operand value to be an int or a float for operator {op}, got {operand}"
            )
    if op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidArgumentError(f"Expected a bool for operator $exists, got {operand!r}")
        return
    if op in _TEXT_OPS or (key == "#document" and op in _DOCUMENT_KEY_OPS):
        if not isinstance(operand, str) or not operand:
            raise InvalidArgumentError(f"Expected a non-empty str pattern for operator {op}, got {operand!r}")
        if op in ("$regex", "$not_regex"):
            _check_regex(operand)
        return
    _check_operand(op, operand)


def _listed(operand: Any) -> list:
    return operand if isinstance(operand, list) else [operand]


def _check_operand(op: str, operand: Any) -> None:
    if not isinstance(operand, (str, int, float, bool)):
        raise InvalidArgumentError(
            f"Expected where operand value for operator {op} to be a str, int, float or bool, got {operand!r}"
        )
    if isinstance(operand, float) and not math.isfinite(operand):
        raise InvalidArgumentError(f"Expected a finite number for operator {op}, got {operand}")
    if isinstance(operand, int) and not isinstance(operand, bool) and not _INT64[0] <= operand <= _INT64[1]:
        raise InvalidArgumentError(f"Operand for {op} does not fit in 64 bits: {operand}")


def validate_where_document(where_document: Any) -> None:
    if not isinstance(where_document, dict):
        raise InvalidArgumentError(f"Expected where document to be a dictionary, got {where_document}")
    if len(where_document) != 1:
        raise InvalidArgumentError(
            f"Expected where document to have exactly one operator, got {where_document}"
        )
    ((op, operand),) = where_document.items()
    if op not in _DOC_OPS:
        raise InvalidArgumentError(
            "Expected where document operator to be one of " + ", ".join(_DOC_OPS) + f", got {op}"
        )
    if op in ("$and", "$or"):
        if not isinstance(operand, list):
            raise InvalidArgumentError(
                "Expected document value for $and or $or to be a list of where document "
                f"expressions, got {operand}"
            )
        if len(operand) <= 1:
            raise InvalidArgumentError(
                "Expected document value for $and or $or to be a list with at least two where "
                f"document expressions, got {operand}"
            )
        for clause in operand:
            validate_where_document(clause)
    elif not isinstance(operand, str):
        raise InvalidArgumentError(
            f"Expected where document operand value for operator {op} to be a str, got {operand}"
        )
    elif not operand:
        raise InvalidArgumentError(
            f"Expected where document operand value for operator {op} to be a non-empty str"
        )
    elif op in ("$regex", "$not_regex"):
        _check_regex(operand)


def _check_regex(pattern: str) -> None:
    """Compile the pattern with the engine that will run it (RE2, as Chroma's Rust regex)."""
    import duckdb  # loaded by check_sql already

    try:
        check_sql("SELECT regexp_matches('', ?)", [pattern])
    except duckdb.Error as exc:
        raise InvalidArgumentError(f"Regex syntax error: {exc}") from exc


def validate_filters(
    ids: Any, where: Any, where_document: Any, where_sql: Any = None, *, allow_empty_ids: bool = False
) -> list[str] | None:
    """The ways a call selects rows; returns the normalized ids (or None). A query may pass
    ``ids=[]`` (it matches nothing, as in Chroma); get and delete may not."""
    if where_sql is not None:
        validate_where_sql(where_sql)
    if where is not None:
        validate_where(where)
    if where_document is not None:
        validate_where_document(where_document)
    return None if ids is None else validate_ids(ids, allow_empty=allow_empty_ids)


def validate_order_by(order_by: Any) -> list[tuple[str, bool]] | None:
    """``order_by`` (a lakevec extension of ``get``): a key, or a list of keys and
    ``(key, "asc" | "desc")`` pairs; a key is ``#id``, ``#document`` or a metadata key."""
    if order_by is None:
        return None
    items = [order_by] if isinstance(order_by, (str, tuple)) else order_by
    if not isinstance(items, list) or not items:
        raise InvalidArgumentError(
            f"Expected order_by to be a key or a non-empty list of keys, got {order_by!r}"
        )
    out = []
    for item in items:
        pair = isinstance(item, (list, tuple)) and len(item) == 2
        key, direction = (item, "asc") if isinstance(item, str) else tuple(item) if pair else (None, None)
        if not isinstance(key, str) or not key or direction not in ("asc", "desc"):
            raise InvalidArgumentError(
                f'Expected each order_by item to be a key or a (key, "asc" | "desc") pair, got {item!r}'
            )
        if key.startswith("#") and key not in ("#id", "#document"):
            raise InvalidArgumentError(f"order_by can sort by #id, #document or a metadata key, got {key}")
        out.append((key, direction == "desc"))
    return out


def validate_include(include: Any, *, allow_distances: bool) -> list[str]:
    if not isinstance(include, (list, tuple)):
        raise InvalidArgumentError(f"Expected include to be a list, got {include}")
    for item in include:
        if not isinstance(item, str) or item not in INCLUDE_VALUES:
            raise InvalidArgumentError(
                "Expected include item to be one of " + ", ".join(INCLUDE_VALUES) + f", got {item}"
            )
        if item == "distances" and not allow_distances:
            raise InvalidArgumentError(f"Include item cannot be one of distances, got {item}")
    if "data" in include:
        raise InvalidArgumentError("You must set a data loader on the collection if loading from URIs.")
    return list(include)


class _NResultsError(InvalidArgumentError, TypeError):
    """Chroma raises TypeError for ``n_results <= 0``; this is caught as either."""

    @classmethod
    def name(cls) -> str:
        return "InvalidArgumentError"


def validate_n_results(n_results: Any) -> int:
    if isinstance(n_results, bool) or not isinstance(n_results, (int, np.integer)) or n_results <= 0:
        raise _NResultsError(f"Number of requested results {n_results}, cannot be negative, or zero.")
    return int(n_results)


def validate_query_embeddings(embeddings: Any, dimension: int | None) -> np.ndarray:
    """One query (a flat list of numbers or a 1-d array) or many, as (nq, dim) float32."""
    if isinstance(embeddings, np.ndarray) and embeddings.ndim == 1:
        embeddings = embeddings.reshape(1, -1)
    elif (
        isinstance(embeddings, (list, tuple))
        and embeddings
        and all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in embeddings)
    ):
        embeddings = [embeddings]
    count = len(embeddings) if hasattr(embeddings, "__len__") else 0
    return validate_embeddings(embeddings, count, dimension)


def validate_limit(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"Expected {name} to be an int, got {value!r}")
    if value < 0:
        raise InvalidArgumentError(f"Expected {name} to be a non-negative int, got {value}")
    return int(value)
