"""Which collection a Ray task works on: a root URL and a name that any process can open."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from lakevec.client import PersistentClient
from lakevec.lake.catalog import DEFAULT_DATABASE, DEFAULT_TENANT

_CLIENTS: dict[str, PersistentClient] = {}
_CLIENTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Target:
    """A collection as every worker of a cluster reaches it: the root must be shared storage
    (an object store, or a path every node mounts); ``memory://`` is one process's alone."""

    root: str
    name: str
    tenant: str = DEFAULT_TENANT
    database: str = DEFAULT_DATABASE
    storage_options: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, collection: Any) -> Target:
        client = collection._client
        storage = client._storage
        return cls(
            storage.url, collection.name, collection.tenant, collection.database, dict(storage.options)
        )

    def client(self) -> PersistentClient:
        """One client per root and process, reused by the tasks a worker runs."""
        key = json.dumps(
            [self.root, self.tenant, self.database, self.storage_options], sort_keys=True, default=str
        )
        with _CLIENTS_LOCK:
            client = _CLIENTS.get(key)
            if client is None:
                client = _CLIENTS[key] = PersistentClient(
                    self.root,
                    tenant=self.tenant,
                    database=self.database,
                    storage_options=self.storage_options,
                )
            return client

    def collection(self) -> Any:
        return self.client().get_collection(self.name)
