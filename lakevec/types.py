"""Chroma's type aliases and result shapes."""

from __future__ import annotations

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
