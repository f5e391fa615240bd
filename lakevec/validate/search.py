"""The Search API's checks: one search in Chroma's wire form (``Search.to_dict()``) becomes a
:class:`~lakevec.read.rank.SearchPlan`, or raises :class:`InvalidArgumentError`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lakevec.errors import InvalidArgumentError
from lakevec.read.rank import KnnLeaf, SearchPlan
from lakevec.validate import validate_query_embeddings, validate_where
from lakevec.validate.sparse import sparse_vector

_SEARCH_PARTS = ("filter", "where", "rank", "group_by", "limit", "select")
_SELECT_KEYS = ("#id", "#document", "#embedding", "#metadata", "#score")


def validate_search(payload: Any, dimension: int | None) -> SearchPlan:
    """One search in Chroma's wire form (``Search.to_dict()``), as a plan to run. ``filter``
    (or ``where``) is a where with the Search API's ``#id``/``#document`` keys; a ``Knn``
    query must be a vector here: the collection embeds text before this."""
    if not isinstance(payload, dict):
        raise InvalidArgumentError(
            f"Expected a search to be a Search or a dict, got {type(payload).__name__}"
        )
    unknown = set(payload) - set(_SEARCH_PARTS)
    if unknown:
        raise InvalidArgumentError(
            f"Unknown search parts {sorted(unknown)}; expected {', '.join(_SEARCH_PARTS)}"
        )
    where = payload.get("filter", payload.get("where"))
    if where == {}:
        where = None
    if where is not None:
        validate_where(where)
    rank = payload.get("rank")
    plan_rank = None if rank is None else _rank(rank, dimension)
    group_keys, aggregate = _group_by(payload.get("group_by") or {})
    offset, limit = _search_limit(payload.get("limit") or {})
    return SearchPlan(where, plan_rank, group_keys, aggregate, offset, limit, _select(payload.get("select")))


def _rank(node: Any, dimension: int | None) -> Any:
    if not isinstance(node, dict) or len(node) != 1:
        raise InvalidArgumentError(f"Expected a rank expression with exactly one operator, got {node!r}")
    ((op, arg),) = node.items()
    if op == "$val":
        if isinstance(arg, bool) or not isinstance(arg, (int, float)) or not math.isfinite(arg):
            raise InvalidArgumentError(f"Expected $val to be a finite number, got {arg!r}")
        return ("$val", float(arg))
    if op == "$knn":
        return ("$knn", _knn(arg, dimension))
    if op in ("$abs", "$exp", "$log"):
        return (op, [_rank(arg, dimension)])
    if op in ("$sub", "$div"):
        if not isinstance(arg, dict) or set(arg) != {"left", "right"}:
            raise InvalidArgumentError(f"Expected {op} to hold 'left' and 'right' ranks, got {arg!r}")
        return (op, [_rank(arg["left"], dimension), _rank(arg["right"], dimension)])
    if op in ("$sum", "$mul", "$max", "$min"):
        if not isinstance(arg, list) or len(arg) < 2:
            raise InvalidArgumentError(f"Expected {op} to hold a list of at least two ranks, got {arg!r}")
        return (op, [_rank(child, dimension) for child in arg])
    raise InvalidArgumentError(
        "Expected a rank operator: $knn, $val, $sum, $sub, $mul, $div, $abs, $exp, $log, $max or $min, "
        f"got {op}"
    )


def _knn(arg: Any, dimension: int | None) -> KnnLeaf:
    if not isinstance(arg, dict) or "query" not in arg:
        raise InvalidArgumentError(f"Expected $knn to hold a query, got {arg!r}")
    unknown = set(arg) - {"query", "key", "limit", "default", "return_rank"}
    if unknown:
        raise InvalidArgumentError(f"Unknown $knn fields {sorted(unknown)}")
    key, query = arg.get("key", "#embedding"), arg["query"]
    if (
        not isinstance(key, str)
        or not key
        or (key.startswith("#") and key not in ("#embedding", "#document"))
    ):
        raise InvalidArgumentError(
            "Knn ranks by the collection's embeddings (key '#embedding'), by BM25 over its "
            f"documents (key '#document') or by a sparse-vector metadata key; got key {key!r}"
        )
    text: str | None = None
    vector = None
    sparse = None
    if not key.startswith("#"):
        vec = sparse_vector(query, "Knn query")
        if vec is None:
            raise InvalidArgumentError(
                f"Knn over the metadata key {key!r} needs a SparseVector query (a text query needs the "
                "key's sparse embedding function in the collection's schema), got "
                f"{type(query).__name__}"
            )
        sparse = (key, np.array(vec.indices, np.int64), np.array(vec.values, np.float64))
    elif key == "#document":
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgumentError(
                f"Expected a non-empty text query for Knn over #document, got {query!r}"
            )
        text = query
    elif isinstance(query, str):
        raise InvalidArgumentError(
            "A Knn text query needs the collection's embedding function: search through it"
        )
    elif isinstance(query, dict) or sparse_vector(query, "Knn query") is not None:
        raise InvalidArgumentError("Knn over a sparse vector needs the metadata key that holds them")
    else:
        vectors = validate_query_embeddings(query, dimension)
        if len(vectors) != 1:
            raise InvalidArgumentError(f"Expected one Knn query vector, got {len(vectors)}")
        vector = vectors[0]
    limit = arg.get("limit", 16)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise InvalidArgumentError(f"Expected Knn limit to be a positive int, got {limit!r}")
    default = arg.get("default")
    if default is not None and (
        isinstance(default, bool) or not isinstance(default, (int, float)) or math.isnan(default)
    ):
        raise InvalidArgumentError(f"Expected Knn default to be a number or None, got {default!r}")
    return_rank = arg.get("return_rank", False)
    if not isinstance(return_rank, bool):
        raise InvalidArgumentError(f"Expected Knn return_rank to be a bool, got {return_rank!r}")
    return KnnLeaf(vector, limit, None if default is None else float(default), return_rank, text, sparse)


def _group_by(group_by: Any) -> tuple[list[str], tuple[bool, list[str], int] | None]:
    if not isinstance(group_by, dict):
        raise InvalidArgumentError(f"Expected group_by to be a GroupBy or a dict, got {group_by!r}")
    if not group_by:
        return [], None
    keys, aggregate = group_by.get("keys"), group_by.get("aggregate")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise InvalidArgumentError(
            f"Expected group_by keys to be a non-empty list of metadata keys, got {keys!r}"
        )
    if any(k.startswith("#") for k in keys):
        raise InvalidArgumentError(f"group_by groups by metadata keys, got {keys}")
    if not isinstance(aggregate, dict) or len(aggregate) != 1:
        raise InvalidArgumentError(f"Expected group_by aggregate to be MinK or MaxK, got {aggregate!r}")
    ((op, arg),) = aggregate.items()
    if op not in ("$min_k", "$max_k") or not isinstance(arg, dict):
        raise InvalidArgumentError(f"Expected group_by aggregate $min_k or $max_k, got {op!r}")
    sort_keys, k = arg.get("keys"), arg.get("k")
    if not isinstance(sort_keys, list) or not sort_keys or not all(isinstance(x, str) for x in sort_keys):
        raise InvalidArgumentError(f"Expected {op} keys to be a non-empty list of keys, got {sort_keys!r}")
    if any(x.startswith("#") and x != "#score" for x in sort_keys):
        raise InvalidArgumentError(f"{op} sorts by #score or metadata keys, got {sort_keys}")
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise InvalidArgumentError(f"Expected {op} k to be a positive int, got {k!r}")
    return list(dict.fromkeys(keys)), (op == "$max_k", sort_keys, k)


def _search_limit(limit: Any) -> tuple[int, int | None]:
    if not isinstance(limit, dict):
        raise InvalidArgumentError(f"Expected limit to be a Limit or a dict, got {limit!r}")
    offset, count = limit.get("offset", 0), limit.get("limit")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidArgumentError(f"Expected limit offset to be a non-negative int, got {offset!r}")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count <= 0):
        raise InvalidArgumentError(f"Expected limit to be a positive int, got {count!r}")
    return offset, count


def _select(select: Any) -> list[str]:
    if select is None:
        return []
    keys = select.get("keys") if isinstance(select, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise InvalidArgumentError(f"Expected select to hold a list of keys, got {select!r}")
    for key in keys:
        if key.startswith("#") and key not in _SELECT_KEYS:
            raise InvalidArgumentError(
                f"Expected select keys among {', '.join(_SELECT_KEYS)} or metadata keys, got {key}"
            )
    return list(dict.fromkeys(keys))
