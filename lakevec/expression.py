"""The Search API's expressions: ``Search``, ``K``/``Key``, ``Knn``, ``Val``, ``Rrf``, ``GroupBy``,
``MinK``, ``MaxK``, ``Limit`` and ``Select``, with chromadb's builder syntax.

Every object serializes (``to_dict``) to the JSON Chroma's client sends to
``POST .../collections/{id}/search``; :meth:`lakevec.Collection.search` evaluates that form, so
chromadb's own expression objects work the same as these. ``Key`` adds lakevec's filter
extensions (``like``, ``ilike``, ``exists``) and ``~where`` negates a filter (``$not``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

Number = int | float


# -- where ---------------------------------------------------------------------------------
class Where:
    """A filter; ``&``, ``|`` and ``~`` combine filters."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __and__(self, other: Where) -> Where:
        return _Logical("$and", _operands("$and", self) + _operands("$and", other))

    def __or__(self, other: Where) -> Where:
        return _Logical("$or", _operands("$or", self) + _operands("$or", other))

    def __invert__(self) -> Where:
        return _Not(self)

    def __repr__(self) -> str:
        return f"Where({self.to_dict()!r})"


def _operands(op: str, node: Any) -> list:
    """``node``'s operands if it is already an ``op`` (``$and``, ``$sum``, ...), else ``[node]``:
    chained operators build one flat list, as chromadb's do."""
    return list(node.operands) if isinstance(node, (_Logical, _Nary)) and node.op == op else [node]


class _Logical(Where):
    def __init__(self, op: str, operands: list[Where]) -> None:
        self.op, self.operands = op, operands

    def to_dict(self) -> dict[str, Any]:
        return {self.op: [c.to_dict() for c in self.operands]}


class _Not(Where):
    def __init__(self, clause: Where) -> None:
        self.clause = clause

    def to_dict(self) -> dict[str, Any]:
        return {"$not": self.clause.to_dict()}


class _Compare(Where):
    def __init__(self, key: str, op: str, value: Any) -> None:
        self.key, self.op, self.value = key, op, value

    def to_dict(self) -> dict[str, Any]:
        return {self.key: {self.op: self.value}}


class Key:
    """A field: ``K("genre")`` for metadata, ``K.ID``, ``K.DOCUMENT``, ``K.EMBEDDING``,
    ``K.METADATA`` and ``K.SCORE`` for the row's own parts."""

    ID: Key
    DOCUMENT: Key
    EMBEDDING: Key
    METADATA: Key
    SCORE: Key

    def __init__(self, name: str) -> None:
        self.name = name

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"K({self.name!r})"

    def __eq__(self, value: Any) -> _Compare:  # type: ignore[override]
        return _Compare(self.name, "$eq", value)

    def __ne__(self, value: Any) -> _Compare:  # type: ignore[override]
        return _Compare(self.name, "$ne", value)

    def __gt__(self, value: Any) -> _Compare:
        return _Compare(self.name, "$gt", value)

    def __ge__(self, value: Any) -> _Compare:
        return _Compare(self.name, "$gte", value)

    def __lt__(self, value: Any) -> _Compare:
        return _Compare(self.name, "$lt", value)

    def __le__(self, value: Any) -> _Compare:
        return _Compare(self.name, "$lte", value)

    def is_in(self, values: list[Any]) -> _Compare:
        return _Compare(self.name, "$in", list(values))

    def not_in(self, values: list[Any]) -> _Compare:
        return _Compare(self.name, "$nin", list(values))

    def contains(self, value: Any) -> _Compare:
        return _Compare(self.name, "$contains", value)

    def not_contains(self, value: Any) -> _Compare:
        return _Compare(self.name, "$not_contains", value)

    def regex(self, pattern: str) -> _Compare:
        return _Compare(self.name, "$regex", pattern)

    def not_regex(self, pattern: str) -> _Compare:
        return _Compare(self.name, "$not_regex", pattern)

    def like(self, pattern: str) -> _Compare:
        """SQL ``LIKE`` (``%`` any run, ``_`` one character); a lakevec extension."""
        return _Compare(self.name, "$like", pattern)

    def ilike(self, pattern: str) -> _Compare:
        """Case-insensitive :meth:`like`; a lakevec extension."""
        return _Compare(self.name, "$ilike", pattern)

    def exists(self, present: bool = True) -> _Compare:
        """Rows that hold (or, with False, lack) this metadata key; a lakevec extension."""
        return _Compare(self.name, "$exists", present)


Key.ID = Key("#id")
Key.DOCUMENT = Key("#document")
Key.EMBEDDING = Key("#embedding")
Key.METADATA = Key("#metadata")
Key.SCORE = Key("#score")
K = Key


def _key_name(key: Key | str) -> str:
    return key.name if isinstance(key, Key) else key


def _keys(keys: Key | str | list[Key | str] | tuple | set) -> list[str]:
    items = [keys] if isinstance(keys, (Key, str)) else list(keys)
    return list(dict.fromkeys(_key_name(k) for k in items))


# -- rank ----------------------------------------------------------------------------------
class Rank:
    """A score, lower first: ``Knn`` results combined with numbers, ``+ - * /``, ``abs``,
    ``exp``, ``log``, ``max`` and ``min``."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Rank({self.to_dict()!r})"

    def __add__(self, other: Rank | Number) -> Rank:
        return _Nary("$sum", _operands("$sum", self) + _operands("$sum", _rank(other)))

    def __radd__(self, other: Number) -> Rank:
        return _rank(other) + self

    def __sub__(self, other: Rank | Number) -> Rank:
        return _Binary("$sub", self, _rank(other))

    def __rsub__(self, other: Number) -> Rank:
        return _Binary("$sub", _rank(other), self)

    def __mul__(self, other: Rank | Number) -> Rank:
        return _Nary("$mul", _operands("$mul", self) + _operands("$mul", _rank(other)))

    def __rmul__(self, other: Number) -> Rank:
        return _rank(other) * self

    def __truediv__(self, other: Rank | Number) -> Rank:
        return _Binary("$div", self, _rank(other))

    def __rtruediv__(self, other: Number) -> Rank:
        return _Binary("$div", _rank(other), self)

    def __neg__(self) -> Rank:
        return _Nary("$mul", [Val(-1), self])

    def __abs__(self) -> Rank:
        return _Unary("$abs", self)

    def abs(self) -> Rank:
        return _Unary("$abs", self)

    def exp(self) -> Rank:
        return _Unary("$exp", self)

    def log(self) -> Rank:
        return _Unary("$log", self)

    def max(self, other: Rank | Number) -> Rank:
        return _Nary("$max", _operands("$max", self) + _operands("$max", _rank(other)))

    def min(self, other: Rank | Number) -> Rank:
        return _Nary("$min", _operands("$min", self) + _operands("$min", _rank(other)))


def _rank(value: Rank | Number) -> Rank:
    return value if isinstance(value, Rank) else Val(value)


class _Nary(Rank):
    def __init__(self, op: str, operands: list[Rank]) -> None:
        self.op, self.operands = op, operands

    def to_dict(self) -> dict[str, Any]:
        return {self.op: [r.to_dict() for r in self.operands]}


class _Binary(Rank):
    def __init__(self, op: str, left: Rank, right: Rank) -> None:
        self.op, self.left, self.right = op, left, right

    def to_dict(self) -> dict[str, Any]:
        return {self.op: {"left": self.left.to_dict(), "right": self.right.to_dict()}}


class _Unary(Rank):
    def __init__(self, op: str, rank: Rank) -> None:
        self.op, self.rank = op, rank

    def to_dict(self) -> dict[str, Any]:
        return {self.op: self.rank.to_dict()}


class Val(Rank):
    """A constant score."""

    def __init__(self, value: Number) -> None:
        self.value = value

    def to_dict(self) -> dict[str, Any]:
        return {"$val": self.value}


class Knn(Rank):
    """The ``limit`` nearest rows to ``query`` (a vector, or text the collection embeds), scored
    by distance or, with ``return_rank``, by position (0 first). A row outside them scores
    ``default``; with no default it drops out of the whole rank expression."""

    def __init__(
        self,
        query: Any,
        key: Key | str = "#embedding",
        limit: int = 16,
        default: float | None = None,
        return_rank: bool = False,
    ) -> None:
        self.query, self.key, self.limit = query, key, limit
        self.default, self.return_rank = default, return_rank

    def to_dict(self) -> dict[str, Any]:
        query = self.query
        if isinstance(query, np.ndarray):
            query = query.tolist()
        elif hasattr(query, "to_dict"):  # a sparse vector
            query = query.to_dict()
        out: dict[str, Any] = {"query": query, "key": _key_name(self.key), "limit": self.limit}
        if self.default is not None:
            out["default"] = self.default
        if self.return_rank:
            out["return_rank"] = True
        return {"$knn": out}


class Rrf(Rank):
    """Reciprocal rank fusion: ``-sum(weight_i / (k + rank_i))`` (negated, so lower is
    better); give its ``Knn`` ranks ``return_rank=True``."""

    def __init__(
        self, ranks: list[Rank], k: int = 60, weights: list[float] | None = None, normalize: bool = False
    ) -> None:
        self.ranks, self.k, self.weights, self.normalize = ranks, k, weights, normalize

    def to_dict(self) -> dict[str, Any]:
        if not self.ranks:
            raise ValueError("RRF requires at least one rank")
        if self.k <= 0:
            raise ValueError(f"k must be positive, got {self.k}")
        weights = list(self.weights) if self.weights else [1.0] * len(self.ranks)
        if len(weights) != len(self.ranks):
            raise ValueError(
                f"Number of weights ({len(weights)}) must match number of ranks ({len(self.ranks)})"
            )
        if any(w < 0 for w in weights):
            raise ValueError("All weights must be non-negative")
        if self.normalize:
            total = sum(weights)
            if total == 0:
                raise ValueError("Sum of weights must be positive when normalize=True")
            weights = [w / total for w in weights]
        terms = [w / (self.k + rank) for w, rank in zip(weights, self.ranks)]
        fused = terms[0]
        for term in terms[1:]:
            fused = fused + term
        return (-fused).to_dict()


# -- grouping, paging, selection ----------------------------------------------------------
class MinK:
    """Keep the ``k`` rows of each group with the smallest ``keys`` (e.g. ``K.SCORE``)."""

    op = "$min_k"

    def __init__(self, keys: Key | str | list[Key | str], k: int) -> None:
        self.keys, self.k = keys, k

    def to_dict(self) -> dict[str, Any]:
        return {self.op: {"keys": _keys(self.keys), "k": self.k}}


class MaxK(MinK):
    """Keep the ``k`` rows of each group with the largest ``keys``."""

    op = "$max_k"


class GroupBy:
    """Group the ranked rows by metadata ``keys`` and keep ``aggregate``'s rows of each."""

    def __init__(self, keys: Key | str | list[Key | str] | tuple = (), aggregate: MinK | None = None) -> None:
        self.keys, self.aggregate = keys, aggregate

    def to_dict(self) -> dict[str, Any]:
        if not self.keys or self.aggregate is None:
            return {}
        return {"keys": _keys(self.keys), "aggregate": self.aggregate.to_dict()}


class Limit:
    def __init__(self, limit: int | None = None, offset: int = 0) -> None:
        self.limit, self.offset = limit, offset

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset} | ({} if self.limit is None else {"limit": self.limit})


class Select:
    def __init__(self, keys: Any = ()) -> None:
        self.keys = keys

    def to_dict(self) -> dict[str, Any]:
        return {"keys": _keys(self.keys)}


class Search:
    """One search: ``where`` filters, ``rank`` scores, ``group_by`` groups, ``limit`` pages
    and ``select`` picks the returned fields (ids always). Builder methods return a copy."""

    def __init__(
        self,
        where: Where | dict[str, Any] | None = None,
        rank: Rank | dict[str, Any] | None = None,
        group_by: GroupBy | dict[str, Any] | None = None,
        limit: Limit | dict[str, Any] | int | None = None,
        select: Select | dict[str, Any] | list | set | None = None,
    ) -> None:
        self._where, self._rank, self._group_by = where, rank, group_by
        self._limit = Limit(limit) if isinstance(limit, int) and not isinstance(limit, bool) else limit
        self._select = Select(select) if isinstance(select, (list, set, tuple)) else select

    def _with(self, **changes: Any) -> Search:
        fields = dict(
            where=self._where,
            rank=self._rank,
            group_by=self._group_by,
            limit=self._limit,
            select=self._select,
        )
        return Search(**(fields | changes))

    def where(self, where: Where | dict[str, Any] | None) -> Search:
        return self._with(where=where)

    def rank(self, rank: Rank | dict[str, Any] | None) -> Search:
        return self._with(rank=rank)

    def group_by(self, group_by: GroupBy | dict[str, Any] | None) -> Search:
        return self._with(group_by=group_by)

    def limit(self, limit: int, offset: int = 0) -> Search:
        return self._with(limit=Limit(limit, offset))

    def select(self, *keys: Key | str) -> Search:
        return self._with(select=Select(keys))

    def select_all(self) -> Search:
        return self._with(select=Select([K.DOCUMENT, K.EMBEDDING, K.METADATA, K.SCORE]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "filter": _as_dict(self._where),
            "rank": _as_dict(self._rank),
            "group_by": _as_dict(self._group_by) or {},
            "limit": _as_dict(self._limit) or {"offset": 0},
            "select": _as_dict(self._select) or {"keys": []},
        }

    def __repr__(self) -> str:
        return f"Search({self.to_dict()!r})"


def _as_dict(part: Any) -> Any:
    return part.to_dict() if hasattr(part, "to_dict") else part


def knn_nodes(node: Any) -> list[dict[str, Any]]:
    """Every ``$knn`` body in a search's wire form (a rank dict, a search, or lists of them)."""
    if isinstance(node, list):
        return [knn for item in node for knn in knn_nodes(item)]
    if not isinstance(node, dict):
        return []
    knn = node.get("$knn")
    if isinstance(knn, dict):
        return [knn]
    return [knn for value in node.values() for knn in knn_nodes(value)]
