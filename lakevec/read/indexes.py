"""The index files of one collection that a process has opened.

Local indexes are memory-mapped, remote ones from their cached copies. A remote index with a
route file is searched through its route (``read/routed.py``) until its copy arrives; its copy
starts once a first query has its answer, so that query does not share the link with it.
"""

from __future__ import annotations

import os
import threading

import numpy as np
from usearch.index import Index

from lakevec.errors import corrupt
from lakevec.lake.fragments import FragmentCache
from lakevec.lake.manifest import FragmentEntry, Manifest
from lakevec.lake.quantize import PROJECTED
from lakevec.lake.route import Route
from lakevec.lake.snapshot import Snapshot
from lakevec.read.routed import RoutedIndex


class OpenIndexes:
    def __init__(self, cache: FragmentCache) -> None:
        self.cache = cache
        self.storage = cache.storage
        self.answered = False  # a query answered: every index is copied from then on
        self._indexes: dict[str, Index] = {}
        self._routed: dict[str, RoutedIndex] = {}  # remote indexes searched by range meanwhile
        self._retired: set[str] = set()  # index files found deleted (superseded)
        self._lock = threading.Lock()

    def prefetch(self, manifest: Manifest, routed: bool = True) -> None:
        """Start copying a remote version's indexes (side by side with the fragments' columns
        the snapshot reads: 1M x 384 on a local S3 server, 532 MB of index took ~1 s and the
        columns of 23 fragments 0.6 s); with ``routed`` False, the route files of those that
        have one instead: a first query searches them by range without the traffic of their
        copies."""
        paths = set()
        for e in manifest.fragments:
            if e.index and e.index not in self._indexes:
                # a route is small: copied at once, beside the fragments' footers
                paths.add(e.index if routed or not e.index_route else e.index_route)
        self.storage.prefetch(sorted(self.cache.path(p) for p in paths))

    def keep(self, manifest: Manifest) -> None:
        """Forget the indexes ``manifest`` no longer lists."""
        live = {e.index for e in manifest.fragments if e.index}
        with self._lock:
            for opened in (self._indexes, self._routed):
                for path in [p for p in opened if p not in live]:
                    del opened[path]

    def of(self, snap: Snapshot) -> dict[str, Index]:
        """Indexes of the snapshot, opened once and kept open; an index file found deleted is
        left out (its rows are searched exactly)."""
        opened: dict[str, Index] = {}
        entries = {e.index: e for e in snap.manifest.fragments if e.index}
        for path, entry in entries.items():
            with self._lock:
                index = self._indexes.get(path)
            if index is None and path not in self._retired:
                routed = self._routed_index(snap, entry)
                if routed is not None:
                    opened[path] = routed  # type: ignore[assignment]  # searched as an Index
                    continue
                index = self.open(path)
            if index is not None:
                opened[path] = index
        return opened

    def open(self, path: str) -> Index | None:
        """An index file opened (memory-mapped when local; a remote one from its cached copy,
        waiting for it), or None if it is gone."""
        with self._lock:
            index = self._indexes.get(path)
        if index is not None:
            return index
        full = self.cache.path(path)
        try:
            local = self.storage.local_copy(full)
            if local is None:
                index = Index.restore(self.storage.read_bytes(full))
            elif os.path.exists(local):  # memory-mapped: the local file or its cached copy
                index = Index.restore(local, view=True)
            else:
                raise FileNotFoundError(local)
        except FileNotFoundError:
            # an index is derived data: the indexer deletes one that a later fold
            # superseded, and a version that still lists it searches its rows exactly
            self._retired.add(path)
            return None
        except (RuntimeError, ValueError) as exc:
            raise corrupt(full, "index", exc) from None
        if index is None:
            raise corrupt(full, "index", ValueError("not a usearch index"))
        with self._lock:
            self._routed.pop(path, None)
            return self._indexes.setdefault(path, index)

    def routed(self, path: str) -> bool:
        """Whether ``path`` is searched through its route now (its copy not opened yet)."""
        return path in self._routed

    def _routed_index(self, snap: Snapshot, entry: FragmentEntry) -> RoutedIndex | None:
        """A remote index not copied yet, searched through its route file meanwhile (None: no
        route, a local root, or the copy is there)."""
        path, route = entry.index, entry.index_route
        assert path is not None
        full = self.cache.path(path)
        if route is None or self.storage.is_cached(full):
            return None
        with self._lock:
            routed = self._routed.get(path)
        if routed is not None:
            return routed
        try:
            loaded = Route.from_bytes(self.storage.read_immutable(self.cache.path(route)))
        except (OSError, ValueError, KeyError):  # gone, or unreadable: the index itself serves
            return None
        hnsw = snap.manifest.config["hnsw"]
        routed = RoutedIndex(
            [(loaded, full)],
            self.storage.read_ranges,
            # projected rows are compared by l2 in any space (lake/quantize.py)
            "l2" if entry.index_codec == PROJECTED else hnsw["space"],
            # an index with a scale holds int8 rows (lakevec's other index dtype is float16)
            np.dtype(np.int8 if entry.index_scale is not None else np.float16),
            hnsw["ef_search"],
            lambda: self.open(path) or _missing(full),
        )
        with self._lock:
            return self._routed.setdefault(path, routed)


def _missing(path: str) -> Index:
    raise FileNotFoundError(path)
