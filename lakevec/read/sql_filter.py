"""``where_sql``: a user's DuckDB boolean expression over ``id``, ``document``, ``uri`` and
metadata columns, made safe to accept from a remote caller.

The text is parsed by DuckDB (``json_serialize_sql``) inside ``SELECT 1 FROM lakevec_rows WHERE
(...)``; anything but one plain WHERE expression is refused: several statements, subqueries,
CTEs, GROUP BY / HAVING / QUALIFY / ORDER BY / LIMIT, another table. It then runs on a
connection with ``enable_external_access = false``, so no file or network access either.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from lakevec.errors import InvalidArgumentError
from lakevec.lake.manifest import MetadataField
from lakevec.read.filter import field_column, quote

if TYPE_CHECKING:
    import duckdb

_CHECKS: duckdb.DuckDBPyConnection | None = None
_CHECKS_LOCK = threading.Lock()


def _checks() -> duckdb.DuckDBPyConnection:
    """The private connection, opened on first use (importing DuckDB costs a cold process
    0.1 s that a vector query does not need)."""
    global _CHECKS
    with _CHECKS_LOCK:
        if _CHECKS is None:
            import duckdb

            _CHECKS = duckdb.connect(config={"enable_external_access": False})
        return _CHECKS


def check_sql(sql: str, params: list) -> object:
    """The one value ``sql`` returns, on a private connection without file or network access;
    used to let DuckDB itself parse or compile what a caller sent."""
    cur = _checks().cursor()
    try:
        return cur.execute(sql, params).fetchone()[0]
    finally:
        cur.close()


def validate_where_sql(expression: object) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidArgumentError(f"where_sql must be a non-empty SQL expression, got {expression!r}")
    text = check_sql("SELECT json_serialize_sql(?)", [f"SELECT 1 FROM lakevec_rows WHERE ({expression})"])
    tree = json.loads(text)
    if tree.get("error"):
        raise InvalidArgumentError(f"where_sql does not parse: {tree.get('error_message', '')}")
    statements = tree.get("statements", [])
    node = statements[0]["node"] if len(statements) == 1 else {}
    plain = (
        node.get("type") == "SELECT_NODE"
        and not node.get("modifiers")
        and not node.get("group_expressions")
        and node.get("having") is None
        and node.get("qualify") is None
        and not (node.get("cte_map") or {}).get("map")
        and (node.get("from_table") or {}).get("table_name") == "lakevec_rows"
        and '"SUBQUERY"' not in text
    )
    if not plain:
        raise InvalidArgumentError(
            "where_sql must be a single boolean expression (no subqueries, statements or clauses)"
        )
    return expression


_BASE = {"_g", "_seq", "_live", "id", "document", "uri"}


def rows_view_sql(fields: tuple[MetadataField, ...]) -> str:
    """The registered row view ``t`` (:func:`~lakevec.read.filter.duckdb_table`) with each
    metadata field under its plain name. DuckDB names are case-insensitive: of fields whose
    names differ only in case, the first one keeps the name."""
    taken = {name.lower() for name in _BASE}
    aliases = []
    for i, f in enumerate(fields):
        if f.name.lower() not in taken:
            taken.add(f.name.lower())
            aliases.append(f"{field_column(i)} AS {quote(f.name)}")
    return "(SELECT " + ", ".join(["*", *aliases]) + " FROM t)"
