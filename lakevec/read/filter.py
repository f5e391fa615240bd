"""Chroma ``where`` / ``where_document`` -> one DuckDB boolean expression with bound parameters.

Beyond Chroma's operators a ``where`` takes the Search API's ``#document`` and ``#id`` keys
and lakevec's extensions: ``$regex`` / ``$not_regex`` / ``$like`` / ``$ilike`` on string
metadata, ``$exists`` and the logical ``$not``.

The expression runs over the snapshot's row view, where every metadata (key, kind) is its own
typed column, registered in DuckDB as ``_m<i>`` for field ``i`` (:func:`duckdb_table`): DuckDB
matches identifiers case-insensitively, so keys ``g`` and ``G`` must not reach it as names.
Values never enter the SQL text: each is a ``?`` parameter. Keys
with no column yet compile to constants. The clauses are validated before compiling
(:mod:`lakevec.validate`), so this module assumes well-formed input.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from lakevec.lake.manifest import MetadataField
from lakevec.lake.schema import META_PREFIX

_NUMERIC = ("int", "float")
_COMPARE = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<=", "$eq": "="}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def field_column(i: int) -> str:
    """The DuckDB name of metadata field ``i``'s column."""
    return f"_m{i}"


def duckdb_table(rows: pa.Table, fields: tuple[MetadataField, ...]) -> pa.Table:
    """``rows`` with each metadata column renamed to :func:`field_column` (zero-copy)."""
    names = {META_PREFIX + f.name: field_column(i) for i, f in enumerate(fields)}
    return rows.rename_columns([names.get(c, c) for c in rows.column_names])


def _kinds_for(value: Any, lists: bool = False) -> tuple[str, ...]:
    if isinstance(value, bool):
        kinds: tuple[str, ...] = ("bool",)
    elif isinstance(value, (int, float)):
        kinds = _NUMERIC
    else:
        kinds = ("str",)
    return tuple(f"list_{k}" for k in kinds) if lists else kinds


class _Compiler:
    def __init__(self, fields: tuple[MetadataField, ...]) -> None:
        self.columns: dict[str, dict[str, str]] = {}
        for i, f in enumerate(fields):
            self.columns.setdefault(f.key, {})[f.kind] = field_column(i)
        self.params: list[Any] = []

    def _any(self, key: str, kinds: tuple[str, ...], make) -> str:
        """OR of ``make(column)`` over the key's columns of the given kinds; FALSE if none.
        A missing value makes the term NULL, which ``coalesce`` turns into FALSE."""
        cols = [c for k, c in self.columns.get(key, {}).items() if k in kinds]
        if not cols:
            return "FALSE"
        return "coalesce(" + " OR ".join(make(c) for c in cols) + ", FALSE)"

    def _bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def where(self, where: dict[str, Any]) -> str:
        ((key, value),) = where.items()
        if key in ("$and", "$or"):
            joiner = " AND " if key == "$and" else " OR "
            return "(" + joiner.join(self.where(w) for w in value) + ")"
        if key == "$not":
            return "NOT " + self.where(value)
        if not isinstance(value, dict):
            value = {"$eq": value}
        ((op, operand),) = value.items()
        if key == "#document":
            return self.document({op: operand})
        if key == "#id":
            return self._id(op, operand)
        if op in ("$regex", "$like", "$ilike"):
            sql = {"$regex": "regexp_matches({}, {})", "$like": "{} LIKE {}", "$ilike": "{} ILIKE {}"}[op]
            return self._any(key, ("str",), lambda c: sql.format(c, self._bind(operand)))
        if op == "$not_regex":
            return "NOT " + self.where({key: {"$regex": operand}})
        if op == "$exists":
            cols = list(self.columns.get(key, {}).values())
            present = "(" + " OR ".join(f"{c} IS NOT NULL" for c in cols) + ")" if cols else "FALSE"
            return present if operand else "NOT " + present
        if op in _COMPARE:
            kinds = _NUMERIC if op != "$eq" else _kinds_for(operand)
            sql_op = _COMPARE[op]
            return self._any(key, kinds, lambda c: f"{c} {sql_op} {self._bind(operand)}")
        if op == "$ne":
            return "NOT " + self.where({key: {"$eq": operand}})
        if op == "$in":
            kinds = _kinds_for(operand[0])
            return self._any(
                key, kinds, lambda c: f"{c} IN (" + ", ".join(self._bind(v) for v in operand) + ")"
            )
        if op == "$nin":
            return "NOT " + self.where({key: {"$in": operand}})
        if op == "$contains":
            kinds = _kinds_for(operand, lists=True)
            return self._any(key, kinds, lambda c: f"list_contains({c}, {self._bind(operand)})")
        if op == "$not_contains":
            return "NOT " + self.where({key: {"$contains": operand}})
        raise AssertionError(f"unvalidated operator {op}")  # validate_where prevents this

    def _id(self, op: str, operand: Any) -> str:
        if op in ("$ne", "$nin"):
            return "NOT " + self._id("$eq" if op == "$ne" else "$in", operand)
        values = operand if op == "$in" else [operand]
        return "id IN (" + ", ".join(self._bind(v) for v in values) + ")"

    def document(self, where_document: dict[str, Any]) -> str:
        ((op, operand),) = where_document.items()
        if op in ("$and", "$or"):
            joiner = " AND " if op == "$and" else " OR "
            return "(" + joiner.join(self.document(w) for w in operand) + ")"
        if op == "$contains":
            return f"coalesce(contains(document, {self._bind(operand)}), FALSE)"
        if op == "$regex":
            return f"coalesce(regexp_matches(document, {self._bind(operand)}), FALSE)"
        if op in ("$like", "$ilike"):
            return f"coalesce(document {op[1:].upper()} {self._bind(operand)}, FALSE)"
        if op == "$not_contains":
            return "NOT " + self.document({"$contains": operand})
        if op == "$not_regex":
            return "NOT " + self.document({"$regex": operand})
        raise AssertionError(f"unvalidated operator {op}")


def order_sql(fields: tuple[MetadataField, ...], order_by: list[tuple[str, bool]]) -> str:
    """``ORDER BY`` terms for ``(key, descending)`` pairs: ``#id``, ``#document`` or a metadata
    key, whose numbers sort before its strings and booleans; rows without it come last, and
    insertion order breaks ties."""
    columns: dict[str, dict[str, str]] = {}
    for i, f in enumerate(fields):
        columns.setdefault(f.key, {})[f.kind] = field_column(i)
    terms = []
    for key, descending in order_by:
        direction = " DESC NULLS LAST" if descending else " ASC NULLS LAST"
        if key in ("#id", "#document"):
            terms.append(key[1:] + direction)
            continue
        kinds = columns.get(key, {})
        numbers = [f"CAST({kinds[k]} AS DOUBLE)" for k in _NUMERIC if k in kinds]
        if numbers:
            terms.append("coalesce(" + ", ".join(numbers) + ")" + direction)
        terms += [kinds[k] + direction for k in ("str", "bool") if k in kinds]
    return ", ".join(terms + ["_seq"])


def compile_filter(
    fields: tuple[MetadataField, ...],
    where: dict[str, Any] | None,
    where_document: dict[str, Any] | None,
) -> tuple[str, list[Any]]:
    """A SQL boolean expression and its parameters; ``TRUE`` when there is no filter."""
    compiler = _Compiler(fields)
    terms = []
    if where:
        terms.append(compiler.where(where))
    if where_document:
        terms.append(compiler.document(where_document))
    return (" AND ".join(terms) or "TRUE"), compiler.params
