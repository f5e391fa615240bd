"""lakevec: Chroma's collection API on open Parquet tables in your lake."""

__version__ = "0.1.0"

from lakevec.client import AdminClient, Client, EphemeralClient, PersistentClient  # noqa: E402
from lakevec.collection import Collection  # noqa: E402
from lakevec.config import Settings  # noqa: E402
from lakevec.http_client import HttpClient  # noqa: E402
from lakevec.types import GetResult  # noqa: E402

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
