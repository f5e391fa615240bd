"""A directory of immutable, numbered JSON documents: ``v00000000000000000007.json``.

Both the catalog and each collection's manifests live in one. Committing version N means
creating its file only if absent (see :meth:`Storage.put_if_absent`); a ``_latest`` hint lets a
reader find the head without listing the directory: it reads the hint and probes forward.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from lakevec.errors import corrupt
from lakevec.lake.manifest import Manifest
from lakevec.lake.storage import Storage

_HINT = "_latest"


def backoff(attempt: int) -> None:
    """Wait a jittered, growing moment after losing the race for a version."""
    time.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 8)))


def version_name(version: int) -> str:
    return f"v{version:020d}.json"


class VersionLog:
    def __init__(self, storage: Storage, directory: str) -> None:
        self.storage = storage
        self.directory = directory
        self._peeked: tuple[int, bytes] | None = None

    def path(self, version: int) -> str:
        return f"{self.directory}/{version_name(version)}"

    def latest(self, known: int | None = None) -> int | None:
        """The newest committed version, or None when the log is empty.

        Costs one small read (the hint) when nothing is known, then one existence probe per
        version committed since; a directory listing only when the hint is missing.
        """
        start = known
        if start is None:
            start = self._read_hint()
        if start is None:
            start = self._scan()
            if start is None:
                return None
        # probing by reading costs one request whether or not the version exists (an existence
        # check on S3 can cost two), and the newest version's bytes are kept for read()
        while (data := self.storage.read_if_exists(self.path(start + 1))) is not None:
            start += 1
            self._peeked = (start, data)
        return start

    def read(self, version: int) -> dict[str, Any]:
        peeked = self._peeked
        data = peeked[1] if peeked is not None and peeked[0] == version else None
        if data is None:
            data = self.storage.read_bytes(self.path(version))
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise corrupt(self.path(version), "version file", exc) from None
        if not isinstance(document, dict):
            raise corrupt(self.path(version), "version file", ValueError("not a JSON object"))
        return document

    def try_commit(self, version: int, document: dict[str, Any]) -> bool:
        """Create version ``version``; False if another writer created it first."""
        data = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
        try:
            created = self.storage.put_if_absent(self.path(version), data)
        except OSError:
            # the request may have reached the store before the error: if the version now holds
            # exactly our bytes (they name our fragments' unique files) it is our commit; if it
            # holds another writer's, we lost the race; if it is absent, the write failed
            try:
                existing = self.storage.read_if_exists(self.path(version))
            except OSError:
                existing = None
            if existing is None:
                raise
            created = existing == data
        if not created:
            return False
        try:
            self.storage.overwrite(f"{self.directory}/{_HINT}", str(version).encode())
        except OSError:
            pass  # the hint is advisory; readers probe forward from an older one
        return True

    def _read_hint(self) -> int | None:
        try:
            return int(self.storage.read_bytes(f"{self.directory}/{_HINT}").decode())
        except (FileNotFoundError, ValueError):
            return None

    def _scan(self) -> int | None:
        versions = [
            int(name[1:-5])
            for name in self.storage.listdir(self.directory)
            if name.startswith("v") and name.endswith(".json") and name[1:-5].isdigit()
        ]
        return max(versions) if versions else None


def retained_manifests(log: VersionLog, latest: int) -> list[Manifest]:
    """Every manifest of a collection's log up to ``latest`` that vacuum has kept, oldest first
    (one small read each)."""
    out = []
    for version in range(latest + 1):
        try:
            out.append(Manifest.from_json(log.read(version)))
        except FileNotFoundError:
            continue
    return out
