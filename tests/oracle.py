"""Plain-Python evaluation of Chroma filters: the oracle the DuckDB filters are checked against."""

from __future__ import annotations

import re
from typing import Any


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _num(a) and _num(b):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


def _like(pattern: str, value: str, ignore_case: bool) -> bool:
    """SQL LIKE: ``%`` any run, ``_`` one character, everything else literal."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.S | (re.I if ignore_case else 0)) is not None


def match_where(md: dict | None, where: dict, doc: str | None = None, id_: str | None = None) -> bool:
    """``where`` on one row; ``doc`` and ``id_`` serve the ``#document`` / ``#id`` keys."""
    ((key, value),) = where.items()
    if key == "$and":
        return all(match_where(md, w, doc, id_) for w in value)
    if key == "$or":
        return any(match_where(md, w, doc, id_) for w in value)
    if key == "$not":
        return not match_where(md, value, doc, id_)
    if not isinstance(value, dict):
        value = {"$eq": value}
    ((op, operand),) = value.items()
    if key == "#id":
        hit = id_ in (operand if op in ("$in", "$nin") else [operand])
        return hit if op in ("$eq", "$in") else not hit
    if key == "#document":
        if op in ("$like", "$ilike"):
            return doc is not None and _like(operand, doc, op == "$ilike")
        return match_document(doc, {op: operand})
    has = md is not None and key in md
    val = md.get(key) if has else None
    if op == "$exists":
        return has == operand
    if op == "$regex":
        return isinstance(val, str) and re.search(operand, val) is not None
    if op == "$not_regex":
        return not match_where(md, {key: {"$regex": operand}})
    if op in ("$like", "$ilike"):
        return isinstance(val, str) and _like(operand, val, op == "$ilike")
    if op == "$eq":
        return has and not isinstance(val, list) and _eq(val, operand)
    if op == "$ne":
        return not match_where(md, {key: {"$eq": operand}})
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not (has and _num(val)):
            return False
        return {"$gt": val > operand, "$gte": val >= operand, "$lt": val < operand, "$lte": val <= operand}[
            op
        ]
    if op == "$in":
        return has and not isinstance(val, list) and any(_eq(val, x) for x in operand)
    if op == "$nin":
        return not match_where(md, {key: {"$in": operand}})
    if op == "$contains":
        return has and isinstance(val, list) and any(_eq(x, operand) for x in val)
    if op == "$not_contains":
        return not match_where(md, {key: {"$contains": operand}})
    raise ValueError(op)


def match_document(doc: str | None, where_document: dict) -> bool:
    ((op, operand),) = where_document.items()
    if op == "$and":
        return all(match_document(doc, w) for w in operand)
    if op == "$or":
        return any(match_document(doc, w) for w in operand)
    if op == "$contains":
        return doc is not None and operand in doc
    if op == "$not_contains":
        return not match_document(doc, {"$contains": operand})
    if op == "$regex":
        return doc is not None and re.search(operand, doc) is not None
    if op == "$not_regex":
        return not match_document(doc, {"$regex": operand})
    raise ValueError(op)
