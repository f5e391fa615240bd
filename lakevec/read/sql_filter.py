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

import duckdb

from lakevec.errors import InvalidArgumentError
from lakevec.lake.manifest import MetadataField
from lakevec.write.fragment import META_PREFIX

_PARSER = duckdb.connect(config={"enable_external_access": False})
_PARSER_LOCK = threading.Lock()


def validate_where_sql(expression: object) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidArgumentError(f"where_sql must be a non-empty SQL expression, got {expression!r}")
    with _PARSER_LOCK:
        text = _PARSER.execute(
            "SELECT json_serialize_sql(?)", [f"SELECT 1 FROM lakevec_rows WHERE ({expression})"]
        ).fetchone()[0]
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


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rows_view_sql(fields: tuple[MetadataField, ...]) -> str:
    """The registered row view ``t`` with each metadata field also under its plain name."""
    aliases = [f"{_quote(META_PREFIX + f.name)} AS {_quote(f.name)}" for f in fields if f.name not in _BASE]
    return "(SELECT " + ", ".join(["*", *aliases]) + " FROM t)"
