"""Tenants, databases and collections of one root, as a versioned JSON document.

Every change commits a new catalog version with the same create-if-absent protocol as the
collections; concurrent changes re-read and retry. The document is small (names and settings).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from typing import Any

from lakevec.errors import CommitFailedError
from lakevec.lake.log import VersionLog, backoff
from lakevec.lake.storage import Storage

DEFAULT_TENANT = "default_tenant"
DEFAULT_DATABASE = "default_database"
FORMAT_VERSION = 1


def _database() -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "collections": {}}


class Catalog:
    """One root's catalog. Threads may share it (a server's requests do): the cached version and
    its document change together under a lock, and an update commits on the version it read."""

    def __init__(self, storage: Storage) -> None:
        self.log = VersionLog(storage, storage.join("catalog"))
        self._lock = threading.Lock()
        self._version: int | None = None
        self._doc: dict[str, Any] = {}
        if self.log.latest() is None:
            initial = {
                "format_version": FORMAT_VERSION,
                "tenants": {DEFAULT_TENANT: {"databases": {DEFAULT_DATABASE: _database()}}},
            }
            self.log.try_commit(0, initial)  # losing this race to another client is fine

    def _newest(self) -> tuple[int, dict[str, Any]]:
        with self._lock:
            latest = self.log.latest(self._version)
            if latest is None:
                raise FileNotFoundError(f"no catalog under {self.log.directory}")
            if latest != self._version:
                self._doc = self.log.read(latest)
                self._version = latest
            return latest, self._doc

    def read(self) -> dict[str, Any]:
        """The newest catalog (one existence probe when unchanged). Do not mutate it."""
        return self._newest()[1]

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to a copy of the newest catalog and commit it; retried on conflict.
        ``change`` may raise to refuse; its return value is passed back."""
        for attempt in range(64):
            version, current = self._newest()
            doc = copy.deepcopy(current)
            result = change(doc)
            if self.log.try_commit(version + 1, doc):
                with self._lock:
                    if self._version is None or self._version < version + 1:
                        self._version, self._doc = version + 1, doc
                return result
            backoff(attempt)
        raise CommitFailedError("catalog: other writers kept committing first")

    # -- lookups on a catalog document ---------------------------------------------------
    @staticmethod
    def tenant(doc: dict[str, Any], tenant: str) -> dict[str, Any] | None:
        return doc["tenants"].get(tenant)

    @staticmethod
    def database(doc: dict[str, Any], tenant: str, database: str) -> dict[str, Any] | None:
        t = doc["tenants"].get(tenant)
        return None if t is None else t["databases"].get(database)

    @staticmethod
    def new_database() -> dict[str, Any]:
        return _database()
