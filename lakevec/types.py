"""Chroma's type aliases and result shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np

ID = str
IDs = list[ID]
Metadata = dict[str, Any]
Where = dict[str, Any]
WhereDocument = dict[str, Any]
Embedding = list[float] | np.ndarray
Include = list[Literal["documents", "embeddings", "metadatas", "distances", "uris", "data"]]


class GetResult(TypedDict):
    ids: list[ID]
    embeddings: np.ndarray | None
    documents: list[str | None] | None
    uris: list[str | None] | None
    data: Any
    metadatas: list[Metadata | None] | None
    included: Include


class QueryResult(TypedDict):
    ids: list[list[ID]]
    embeddings: list[np.ndarray] | None
    documents: list[list[str | None]] | None
    uris: list[list[str | None]] | None
    data: Any
    metadatas: list[list[Metadata | None]] | None
    distances: list[list[float]] | None
    included: Include


class Tenant(TypedDict):
    name: str


class Database(TypedDict):
    id: Any
    name: str
    tenant: str


class SearchResult(dict):
    """Chroma's ``SearchResult``: per search, the ids and the selected ``documents``,
    ``embeddings``, ``metadatas`` and ``scores`` (None where not selected), and ``select``."""

    def rows(self) -> list[list[dict[str, Any]]]:
        """Per search, one dict per row with ``id`` and the fields that have a value."""
        out = []
        fields = [("documents", "document"), ("embeddings", "embedding"), ("metadatas", "metadata")]
        fields.append(("scores", "score"))
        for s, ids in enumerate(self.get("ids", [])):
            columns = [(name, (self.get(plural) or [None] * len(self["ids"]))[s]) for plural, name in fields]
            rows = []
            for r, id_ in enumerate(ids):
                row: dict[str, Any] = {"id": id_}
                for name, values in columns:
                    if values is not None and values[r] is not None:
                        row[name] = values[r]
                rows.append(row)
            out.append(rows)
        return out


SPARSE_TYPE = "sparse_vector"  # the ``#type`` tag of a sparse vector in Chroma's JSON


@dataclass(frozen=True)
class SparseVector:
    """Chroma's ``SparseVector`` as a metadata value: strictly ascending ``indices`` with their
    ``values`` (and, optionally, the tokens they stand for, ``labels``). Validated where it
    enters a collection; chromadb's own objects are accepted alike."""

    indices: list[int]
    values: list[float]
    labels: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Chroma's wire form (its tokens travel as ``tokens``)."""
        out: dict[str, Any] = {"#type": SPARSE_TYPE, "indices": self.indices, "values": self.values}
        if self.labels is not None:
            out["tokens"] = self.labels
        return out
