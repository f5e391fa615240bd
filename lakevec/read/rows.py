"""Selected positions -> Chroma's ``GetResult`` (the API edge, where rows become Python)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lakevec.errors import InvalidArgumentError
from lakevec.lake.schema import metadata_dicts
from lakevec.lake.snapshot import Snapshot
from lakevec.read.filter import compile_filter, duckdb_table, order_sql
from lakevec.read.sql_filter import rows_view_sql

if TYPE_CHECKING:
    import duckdb


def select(
    snap: Snapshot,
    con: duckdb.DuckDBPyConnection,
    *,
    ids: list[str] | None = None,
    where: dict | None = None,
    where_document: dict | None = None,
    where_sql: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    ordered: bool = True,
    order_by: list[tuple[str, bool]] | None = None,
) -> np.ndarray:
    """Positions of the live rows that pass every given filter, in insertion order or by
    ``order_by`` (any order when ``ordered`` is False: a query only needs the set)."""
    positions = None
    if ids is not None:
        positions = snap.lookup(ids)
        positions = positions[positions >= 0]
        if ordered:
            positions = snap.in_order(positions)
    if where or where_document or where_sql or order_by:
        expr, params = compile_filter(snap.manifest.fields, where, where_document)
        table = snap.rows if positions is None else snap.take(positions)
        source = rows_view_sql(snap.manifest.fields) if where_sql else "t"
        user = f" AND ({where_sql})" if where_sql else ""  # validated: one plain expression
        order = order_sql(snap.manifest.fields, order_by) if order_by else "_seq"
        sql = f"SELECT _g FROM {source} WHERE _live AND ({expr}){user}" + (
            f" ORDER BY {order}" if ordered else ""
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        if offset:
            sql += " OFFSET ?"
            params.append(offset)
        import duckdb  # its exceptions; a process that never filters never imports it

        cur = con.cursor()
        try:
            cur.register("t", duckdb_table(table, snap.manifest.fields))
            return cur.execute(sql, params).fetchnumpy()["_g"].astype(np.int64)
        except (
            duckdb.InvalidInputException,
            duckdb.BinderException,
            duckdb.ConversionException,
            duckdb.PermissionException,
        ) as exc:
            raise InvalidArgumentError(f"Invalid filter: {exc}") from exc  # e.g. an unknown column
        finally:
            cur.close()
    if positions is None:
        positions = snap.live_in_order
    start = offset or 0
    stop = None if limit is None else start + limit
    return positions[start:stop]


def get_result(snap: Snapshot, positions: np.ndarray, include: list[str]) -> dict[str, Any]:
    sub = snap.take(positions)
    return {
        "ids": sub.column("id").to_pylist(),
        "embeddings": snap.embeddings(positions) if "embeddings" in include else None,
        "documents": sub.column("document").to_pylist() if "documents" in include else None,
        "uris": sub.column("uri").to_pylist() if "uris" in include else None,
        "included": list(include),
        "data": None,
        "metadatas": metadata_dicts(sub, snap.manifest.fields) if "metadatas" in include else None,
    }
