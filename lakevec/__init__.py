"""lakevec: Chroma's collection API on open Parquet tables in your lake."""

from lakevec.client import AdminClient, Client, EphemeralClient, PersistentClient
from lakevec.collection import Collection
from lakevec.config import Settings
from lakevec.http_client import HttpClient
from lakevec.types import GetResult
from lakevec.version import __version__

__all__ = [
    "AdminClient",
    "Client",
    "Collection",
    "EphemeralClient",
    "GetResult",
    "HttpClient",
    "PersistentClient",
    "Settings",
    "__version__",
]
