"""The Search API's ranking: Knn results -> rank expression -> groups -> page -> selected fields.

A rank expression is evaluated over *domains*, as Chroma does: a domain holds the scores of
some rows and a default for every other row, or no default, meaning other rows drop out.
``Knn`` gives its nearest rows with its ``default``; ``Val`` gives no rows and its value as the
default; an operator combines two domains over the union of their rows where both have a
default, over one side's rows where only the other has one, and over the rows both hold where
neither has. Lower scores come first; ties go to the earlier position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lakevec.lake.schema import META_PREFIX, dicts_from_columns
from lakevec.lake.snapshot import Snapshot

UNARY = {"$abs": np.abs, "$exp": np.exp, "$log": np.log}
BINARY = {"$sub": np.subtract, "$div": np.divide}
# n-ary operators fold from a constant, as Chroma's do
NARY = {
    "$sum": (np.add, 0.0),
    "$mul": (np.multiply, 1.0),
    "$max": (np.maximum, float(np.finfo(np.float32).min)),
    "$min": (np.minimum, float(np.finfo(np.float32).max)),
}


@dataclass
class KnnLeaf:
    query: np.ndarray | None  # a vector, or None for a full-text (BM25) leaf
    limit: int
    default: float | None
    return_rank: bool
    text: str | None = None  # the BM25 query over documents (key ``#document``)
    # a sparse query over a metadata key: (key, ascending indices, weights)
    sparse: tuple[str, np.ndarray, np.ndarray] | None = None
    # filled by the engine: the leaf's nearest allowed rows and their distances, nearest first
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distances: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


@dataclass
class SearchPlan:
    """One validated search (see :func:`lakevec.validate.search.validate_search`)."""

    where: dict[str, Any] | None
    rank: Any  # ("$knn", KnnLeaf) | ("$val", float) | (operator, [children])
    group_keys: list[str]
    aggregate: tuple[bool, list[str], int] | None  # (largest first, sort keys, rows per group)
    offset: int
    limit: int | None
    select: list[str]

    def knn_leaves(self) -> list[KnnLeaf]:
        out: list[KnnLeaf] = []

        def walk(node: Any) -> None:
            op, arg = node
            if op == "$knn":
                out.append(arg)
            elif op != "$val":
                for child in arg:
                    walk(child)

        if self.rank is not None:
            walk(self.rank)
        return out


@dataclass
class Domain:
    rows: np.ndarray  # sorted positions
    scores: np.ndarray  # float32, one per row
    default: float | None

    def at(self, rows: np.ndarray) -> np.ndarray:
        fill = np.float32(np.nan if self.default is None else self.default)
        if not len(self.rows):
            return np.full(len(rows), fill, np.float32)
        i = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        return np.where(self.rows[i] == rows, self.scores[i], fill).astype(np.float32)


def _merge(a: Domain, b: Domain, op) -> Domain:
    if a.default is not None and b.default is not None:
        rows = np.union1d(a.rows, b.rows)
        default = float(op(np.float32(a.default), np.float32(b.default)))
    else:
        rows = (
            b.rows
            if a.default is not None
            else a.rows
            if b.default is not None
            else np.intersect1d(a.rows, b.rows)
        )
        default = None
    with np.errstate(all="ignore"):
        return Domain(rows, op(a.at(rows), b.at(rows)).astype(np.float32), default)


def evaluate(node: Any) -> Domain:
    op, arg = node
    if op == "$val":
        return Domain(np.zeros(0, np.int64), np.zeros(0, np.float32), float(np.float32(arg)))
    if op == "$knn":
        order = np.argsort(arg.positions, kind="stable")
        scores = np.arange(len(order), dtype=np.float32) if arg.return_rank else arg.distances
        return Domain(arg.positions[order], scores[order].astype(np.float32), arg.default)
    if op in UNARY:
        inner = evaluate(arg[0])
        with np.errstate(all="ignore"):
            scores = UNARY[op](inner.scores).astype(np.float32)
            default = None if inner.default is None else float(UNARY[op](np.float32(inner.default)))
        return Domain(inner.rows, scores, default)
    if op in BINARY:
        return _merge(evaluate(arg[0]), evaluate(arg[1]), BINARY[op])
    fn, start = NARY[op]
    domain = evaluate(("$val", start))
    for child in arg:
        domain = _merge(domain, evaluate(child), fn)
    return domain


def _sort_columns(snap: Snapshot, key: str) -> list[str]:
    """The row-view columns of a metadata key that can be compared (not lists)."""
    return [
        META_PREFIX + f.name for f in snap.manifest.fields if f.key == key and not f.kind.startswith("list")
    ]


def _group(snap: Snapshot, plan: SearchPlan, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indexes into ``rows`` of the rows each group keeps."""
    import polars as pl

    largest, keys, k = plan.aggregate  # type: ignore[misc]
    group_cols = [c for key in plan.group_keys for c in _sort_columns(snap, key)]
    sort_cols = [c for key in keys if key != "#score" for c in _sort_columns(snap, key)]
    wanted = list(dict.fromkeys(group_cols + sort_cols))
    frame = pl.DataFrame(snap.take(rows, wanted)) if wanted else pl.DataFrame()
    frame = frame.with_columns(pl.Series("_score", scores), pl.Series("_i", np.arange(len(rows))))
    by = []
    for key in keys:
        by += ["_score"] if key == "#score" else _sort_columns(snap, key)
    # ties go to the better score, then the earlier row
    ties = [c for c in ("_score", "_i") if c not in by]
    frame = frame.sort(by + ties, descending=[largest] * len(by) + [False] * len(ties), nulls_last=True)
    nth = pl.int_range(pl.len())
    frame = frame.with_columns((nth.over(group_cols) if group_cols else nth).alias("_n"))
    return frame.filter(pl.col("_n") < k)["_i"].to_numpy()


def ranked(snap: Snapshot, plan: SearchPlan) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of the search's rows, best first, before paging."""
    domain = evaluate(plan.rank)
    rows, scores = domain.rows, domain.scores
    if plan.aggregate is not None and len(rows):
        keep = _group(snap, plan, rows, scores)
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, scores))
    return rows[order], scores[order]


def search_results(
    snap: Snapshot, plans: list[SearchPlan], found: list[tuple[np.ndarray, np.ndarray | None]]
) -> dict[str, Any]:
    """Chroma's ``SearchResult`` columns for each search's ``(positions, scores)``."""
    out: dict[str, list] = {
        k: [] for k in ("ids", "documents", "embeddings", "metadatas", "scores", "select")
    }
    for plan, (rows, scores) in zip(plans, found):
        chosen = set(plan.select)
        meta_keys = [k for k in plan.select if not k.startswith("#")]
        columns = ["id"] + (["document"] if "#document" in chosen else [])
        if "#metadata" in chosen or meta_keys:
            columns += snap.metadata_columns()
        values = snap.values(rows, columns)
        out["ids"].append(values["id"])
        out["documents"].append(values["document"] if "#document" in chosen else None)
        out["embeddings"].append(snap.embeddings(rows).tolist() if "#embedding" in chosen else None)
        metadatas = None
        if "#metadata" in chosen or meta_keys:
            metadatas = dicts_from_columns(values, snap.manifest.fields, len(rows))
            if "#metadata" not in chosen:
                metadatas = [{k: m[k] for k in meta_keys if k in m} if m else {} for m in metadatas]
        out["metadatas"].append(metadatas)
        if "#score" in chosen:
            out["scores"].append([None] * len(rows) if scores is None else scores.astype(float).tolist())
        else:
            out["scores"].append(None)
        out["select"].append(list(plan.select))
    return out
