"""Tenants, databases and collections of one root, as a versioned JSON document.

Every change commits a new catalog version with the same create-if-absent protocol as the
collections; concurrent changes re-read and retry. The document is small (names and settings).
"""

from __future__ import annotations

import copy
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
    def __init__(self, storage: Storage) -> None:
        self.log = VersionLog(storage, storage.join("catalog"))
        self._version: int | None = None
        self._doc: dict[str, Any] = {}
        if self.log.latest() is None:
            initial = {
                "format_version": FORMAT_VERSION,
                "tenants": {DEFAULT_TENANT: {"databases": {DEFAULT_DATABASE: _database()}}},
            }
            self.log.try_commit(0, initial)  # losing this race to another client is fine

    def read(self) -> dict[str, Any]:
        """The newest catalog (one existence probe when unchanged). Do not mutate it."""
        latest = self.log.latest(self._version)
        if latest != self._version:
            self._doc = self.log.read(latest)
            self._version = latest
        return self._doc

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to a copy of the newest catalog and commit it; retried on conflict.
        ``change`` may raise to refuse; its return value is passed back."""
        for attempt in range(64):
            doc = copy.deepcopy(self.read())
            result = change(doc)
            assert self._version is not None
            if self.log.try_commit(self._version + 1, doc):
                self._version, self._doc = self._version + 1, doc
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
