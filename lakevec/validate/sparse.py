"""Chroma's sparse vectors where they enter: metadata values, Knn queries, sparse embedding
functions' output."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lakevec.errors import InvalidArgumentError
from lakevec.types import SPARSE_TYPE, SparseVector


def _as_list(value: Any) -> Any:
    """Plain Python numbers for a tuple or numpy array of them (other values as they are)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    return value


def checked_sparse_vector(value: Any, what: str) -> SparseVector:
    """A sparse embedding function's output (or a query) as a checked :class:`SparseVector`."""
    out = sparse_vector(value, what)
    if out is None:
        raise InvalidArgumentError(f"{what}: expected a sparse vector, got {type(value).__name__}")
    return out


def sparse_vector(value: Any, what: str) -> SparseVector | None:
    """``value`` as a checked :class:`SparseVector` if it is one (lakevec's, chromadb's, or
    Chroma's JSON form with ``"#type": "sparse_vector"``), else None."""
    if isinstance(value, dict):
        if value.get("#type") != SPARSE_TYPE:
            return None
        indices, values, labels = value.get("indices"), value.get("values"), value.get("tokens")
    elif hasattr(value, "indices") and hasattr(value, "values") and not isinstance(value, (list, np.ndarray)):
        indices, values, labels = value.indices, value.values, getattr(value, "labels", None)
    else:
        return None
    indices = _as_list(indices)
    values = _as_list(values)
    if not isinstance(indices, list) or not isinstance(values, list) or len(indices) != len(values):
        raise InvalidArgumentError(f"{what}: a sparse vector needs lists of indices and values of one length")
    if not all(type(i) is int and 0 <= i < 2**32 for i in indices):
        raise InvalidArgumentError(f"{what}: sparse vector indices must be ints from 0 to 2^32 - 1")
    if any(b <= a for a, b in zip(indices, indices[1:])):
        raise InvalidArgumentError(f"{what}: sparse vector indices must be strictly ascending")
    if not all(type(x) in (int, float) and math.isfinite(x) for x in values):
        raise InvalidArgumentError(f"{what}: sparse vector values must be finite numbers")
    if labels is not None and (
        not isinstance(labels, list)
        or len(labels) != len(indices)
        or not all(isinstance(t, str) for t in labels)
    ):
        raise InvalidArgumentError(f"{what}: sparse vector labels must be one str per index")
    return SparseVector(indices, [float(x) for x in values], labels)
