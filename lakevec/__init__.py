"""lakevec: Chroma's collection API on open Parquet tables in your lake."""

from lakevec.client import AdminClient, Client, EphemeralClient, PersistentClient
from lakevec.collection import Collection
from lakevec.config import Settings
from lakevec.expression import GroupBy, K, Key, Knn, Limit, MaxK, MinK, Rrf, Search, Select, Val
from lakevec.http_client import HttpClient
from lakevec.types import GetResult, SearchResult, SparseVector
from lakevec.version import __version__

__all__ = [
    "AdminClient",
    "Client",
    "Collection",
    "EphemeralClient",
    "GetResult",
    "GroupBy",
    "HttpClient",
    "K",
    "Key",
    "Knn",
    "Limit",
    "MaxK",
    "MinK",
    "PersistentClient",
    "Rrf",
    "Search",
    "SearchResult",
    "SparseVector",
    "Select",
    "Settings",
    "Val",
    "__version__",
]
