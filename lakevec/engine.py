"""One collection's storage engine: its snapshot, its reads and its commit loop.

A :class:`Collection` validates arguments and calls this. Writers in other threads, processes
or hosts are expected: every write re-plans on the newest version when it loses the race for
the next one. Background work (index folds, merges, compaction, vacuum) lives in
:mod:`lakevec.maintenance`, which drives an engine through ``commit_transform`` and hears of
new rows through ``on_commit``.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
import weakref
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from usearch.index import Index

from lakevec.errors import CommitFailedError, InternalError, InvalidArgumentError, NotFoundError
from lakevec.lake import forks
from lakevec.lake.fragments import FragmentCache
from lakevec.lake.log import VersionLog, backoff, retained_manifests
from lakevec.lake.manifest import Manifest
from lakevec.lake.snapshot import Snapshot
from lakevec.lake.storage import Storage
from lakevec.lake.tags import Tags
from lakevec.read.bm25 import bm25_top
from lakevec.read.indexes import OpenIndexes
from lakevec.read.query import FilterCache, query_result, search
from lakevec.read.rank import KnnLeaf, ranked, search_results
from lakevec.read.rows import get_result, select
from lakevec.read.search import Hits
from lakevec.read.sparse import sparse_top
from lakevec.validate import validate_query_embeddings
from lakevec.validate.search import validate_search
from lakevec.write.commit import Written, discard, write_and_commit
from lakevec.write.plan import Change, plan_add, plan_delete, plan_upsert

if TYPE_CHECKING:
    import duckdb

MAX_ATTEMPTS = 64
# newest version of each collection any engine of this process has seen: two clients in one
# process read each other's writes at once, whatever the consistency interval
_NEWEST: dict[tuple[str, str], int] = {}
_NEWEST_LOCK = threading.Lock()
# read-only engines over old versions alive in this process: vacuum keeps what they read
_PINNED: weakref.WeakSet[CollectionEngine] = weakref.WeakSet()


class CollectionEngine:
    def __init__(self, storage: Storage, collection_id: str, directory: str | None = None) -> None:
        self.storage = storage
        self.collection_id = collection_id
        self.directory = storage.join(directory or f"collections/{collection_id}")
        self._relative = directory
        self.pinned_version: int | None = None  # set on read-only engines over an old version
        self.log = VersionLog(storage, f"{self.directory}/versions")
        self.cache = FragmentCache(storage, self.directory)
        self.tags = Tags(storage, self.directory)
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._key = (storage.url_key(), self.directory)
        self._lock = threading.RLock()
        self._filters = FilterCache()
        self.indexes = OpenIndexes(self.cache)
        self._queried = False
        # called after each commit that added fragments (the indexer schedules a fold)
        self.on_commit: list[Callable[[], None]] = []

    @cached_property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The connection filters run on, user ``where_sql`` included: no file or network
        access. Opened on first use: a process that only runs vector queries never imports
        DuckDB (0.1 s of a cold start)."""
        import duckdb

        return duckdb.connect(config={"enable_external_access": False})

    def _connection(self) -> duckdb.DuckDBPyConnection:
        return self._con

    # -- lifecycle -----------------------------------------------------------------------
    def create(self, config: dict[str, Any]) -> None:
        self.log.try_commit(0, Manifest.empty(config).to_json())

    def snapshot(self, fresh: bool = False) -> Snapshot:
        """The newest committed version: one probe of the log when nothing changed. On object
        stores a read reuses a version checked less than ``storage.consistency_interval`` ago
        (other processes' commits show within that bound; this process's own at once); writes
        pass ``fresh=True`` and always probe."""
        if self.pinned_version is not None:
            if fresh:
                raise self.read_only_error()
            assert self._snapshot is not None
            return self._snapshot
        with self._lock:
            snap = self._snapshot
            if (
                not fresh
                and snap is not None
                and time.monotonic() - self._checked < self.storage.consistency_interval
                and _NEWEST.get(self._key, -1) <= snap.version
            ):
                return snap
            known = snap.version if snap else None
            latest = self.log.latest(known)
            self._checked = time.monotonic()
            if latest is None:
                raise NotFoundError("Collection does not exist (its manifest log is missing)")
            if snap is None or latest != known:
                try:
                    manifest = Manifest.from_json(self.log.read(latest))
                except FileNotFoundError:  # the collection was deleted since the probe
                    raise NotFoundError("Collection does not exist (its manifest log is gone)") from None
                self._install(manifest)
            assert self._snapshot is not None
            return self._snapshot

    def _install(self, manifest: Manifest) -> None:
        if self._queried:
            self.indexes.prefetch(manifest, routed=self.indexes.answered)
        self._snapshot = Snapshot(manifest, self.cache)
        with _NEWEST_LOCK:
            if _NEWEST.get(self._key, -1) < manifest.version:
                _NEWEST[self._key] = manifest.version
        keep = {p for e in manifest.fragments for p in (e.path, e.deletes, e.index_projection) if p}
        self.cache.forget(keep)
        self.indexes.keep(manifest)

    def _start_querying(self) -> None:
        """From an engine's first query on, a version it installs has its indexes fetched at
        once (an engine that only writes or gets never fetches them); those with a route file
        once a first query has its answer (:meth:`_answered`)."""
        if not self._queried:
            self._queried = True
            if self._snapshot is not None:
                self.indexes.prefetch(self._snapshot.manifest, routed=False)

    def _answered(self, snap: Snapshot) -> None:
        """After a query: copy in the background what it read in part, and the indexes it
        searched by range."""
        self.cache.download_rest()
        if not self.indexes.answered:
            self.indexes.answered = True
            self.indexes.prefetch(snap.manifest)

    def commit_transform(self, transform: Callable[[Manifest], Manifest | None]) -> Manifest | None:
        """Commit ``transform(newest manifest)``, re-applied on the winner after a lost race;
        ``transform`` returns None to give up (the change no longer applies)."""
        return self.commit_snapshot(lambda snap: transform(snap.manifest))

    def commit_snapshot(self, transform: Callable[[Snapshot], Manifest | None]) -> Manifest | None:
        """:meth:`commit_transform` for changes that read rows of the newest version (ids)."""
        with self._lock:
            for attempt in range(MAX_ATTEMPTS):
                manifest = transform(self.snapshot(fresh=True))
                if manifest is None:
                    return None
                if self.log.try_commit(manifest.version, manifest.to_json()):
                    self._install(manifest)
                    return manifest
                backoff(attempt)
        raise CommitFailedError(f"gave up after {MAX_ATTEMPTS} attempts: other writers kept committing first")

    # -- writes --------------------------------------------------------------------------
    def _write(self, plan: Callable[[Snapshot], Change], cache_vectors: bool = True) -> Any:
        with self._lock:
            prior: Written | None = None
            for attempt in range(MAX_ATTEMPTS):
                snap = self.snapshot(fresh=True)
                change = plan(snap)
                if change.empty:
                    if prior is not None:
                        discard(prior, None, self.cache)
                    return change.result
                manifest, written = write_and_commit(snap, change, self.log, self.cache, prior)
                if prior is not None:
                    discard(prior, written, self.cache)
                if manifest is not None:
                    for entry, part in zip(written.entries, written.parts):
                        self.cache.put(entry, part, vectors=cache_vectors)
                    for path, rows in written.deletes.items():
                        self.cache.put_deletes(path, rows)
                    self._install(manifest)
                    if written.entries:
                        for hook in self.on_commit:
                            hook()
                    return change.result
                prior = written
                backoff(attempt)
            if prior is not None:
                discard(prior, None, self.cache)
            raise CommitFailedError(
                f"gave up after {MAX_ATTEMPTS} attempts: other writers kept committing first"
            )

    def add(self, ids, embeddings, documents, uris, metadatas, *, cache_vectors: bool = True) -> None:
        self._write(lambda s: plan_add(s, ids, embeddings, documents, uris, metadatas), cache_vectors)

    def upsert(
        self, ids, embeddings, documents, uris, metadatas, *, update_only: bool, cache_vectors: bool = True
    ) -> None:
        self._write(
            lambda s: plan_upsert(s, ids, embeddings, documents, uris, metadatas, update_only=update_only),
            cache_vectors,
        )

    def delete(self, ids=None, where=None, where_document=None, where_sql=None, limit=None) -> int:
        """Delete the selected rows (the first ``limit`` of them in insertion order, if given)."""

        def plan(snap: Snapshot) -> Change:
            positions = select(
                snap,
                self._con,
                ids=ids,
                where=where,
                where_document=where_document,
                where_sql=where_sql,
                limit=limit,
            )
            change = plan_delete(snap, positions)
            change.result = len(positions)
            return change

        return self._write(plan)

    # -- reads ---------------------------------------------------------------------------
    def count(self) -> int:
        return len(self.snapshot())

    def dimension(self) -> int | None:
        """The dimension for validating a call. While a write of this engine is in flight (an
        import validates batch k+1 as batch k commits) the installed version answers instead of
        waiting: the commit checks the dimension again."""
        if self._lock.acquire(blocking=False):
            try:
                return self.snapshot().manifest.dimension
            finally:
                self._lock.release()
        snap = self._snapshot
        return snap.manifest.dimension if snap is not None else self.snapshot().manifest.dimension

    def get(
        self, *, ids, where, where_document, limit, offset, include, where_sql=None, order_by=None
    ) -> dict[str, Any]:
        snap = self.snapshot()
        positions = select(
            snap,
            self._con,
            ids=ids,
            where=where,
            where_document=where_document,
            where_sql=where_sql,
            limit=limit,
            offset=offset,
            order_by=order_by,
        )
        return get_result(snap, positions, include)

    # -- vector search ---------------------------------------------------------------------
    def _open_indexes(self, snap: Snapshot) -> dict[str, Index]:
        """Indexes of the snapshot, opened once and kept open (read/indexes.py)."""
        return self.indexes.of(snap)

    def query(
        self, queries: np.ndarray, k: int, *, ids, where, where_document, include, hnsw, where_sql=None
    ) -> dict[str, Any]:
        """``queries`` as the caller gave them: checked here against the snapshot's dimension."""
        self._start_querying()
        snap = self.snapshot()
        queries = validate_query_embeddings(queries, snap.manifest.dimension)
        allowed = self._filters.allowed(snap, self._connection, ids, where, where_document, where_sql)
        hits = search(snap, self._open_indexes(snap), queries, k, allowed, hnsw)
        result = query_result(snap, hits, include)
        self._answered(snap)  # copies start in the background, once this query has its answer
        return result

    def query_shard(
        self, queries: np.ndarray, k: int, *, where, where_document, hnsw, shard: frozenset[str] | None
    ) -> Hits:
        """The hits of :meth:`query` within one shard (:func:`shards`), before any row is read:
        a distributed batch query merges the shards' hits with ``merge_hits``."""
        self._start_querying()
        snap = self.snapshot()
        queries = validate_query_embeddings(queries, snap.manifest.dimension)
        allowed = self._filters.allowed(snap, self._connection, None, where, where_document)
        hits = search(snap, self._open_indexes(snap), queries, k, allowed, hnsw, shard)
        self._answered(snap)
        return hits

    def search(
        self, payloads: list[Any], hnsw: dict[str, Any], idf_keys: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """The Search API over one snapshot: each payload is a search in Chroma's wire form.
        Knn leaves sharing a filter and limit run as one batched query; a Knn over
        ``#document`` ranks by BM25, one over a metadata key by its sparse vectors (their
        query weighted by idf where the key is in ``idf_keys``)."""
        self._start_querying()
        snap = self.snapshot()
        plans = [validate_search(p, snap.manifest.dimension) for p in payloads]
        batches: dict[tuple[str, int], list[KnnLeaf]] = {}
        texts: list[tuple[dict | None, KnnLeaf]] = []
        for plan in plans:
            for leaf in plan.knn_leaves():
                if leaf.text is not None or leaf.sparse is not None:
                    texts.append((plan.where, leaf))
                else:
                    batches.setdefault((json.dumps(plan.where, sort_keys=True), leaf.limit), []).append(leaf)
        for where, leaf in texts:
            allowed = self._filters.allowed(snap, self._connection, None, where, None)
            if leaf.sparse is not None:
                key, indices, weights = leaf.sparse
                idf = key in idf_keys
                leaf.positions, leaf.distances = sparse_top(
                    snap, key, indices, weights, leaf.limit, allowed.mask, idf
                )
            else:
                leaf.positions, leaf.distances = bm25_top(snap, leaf.text, leaf.limit, allowed.mask)  # type: ignore[arg-type]
        indexes = self._open_indexes(snap) if batches else {}
        for (where_json, limit), leaves in batches.items():
            allowed = self._filters.allowed(snap, self._connection, None, json.loads(where_json), None)
            stacked = np.stack([cast(np.ndarray, leaf.query) for leaf in leaves])  # vector leaves only
            hits = search(snap, indexes, stacked, limit, allowed, hnsw)
            for leaf, positions, distances in zip(leaves, hits.positions, hits.distances):
                hit = positions >= 0
                leaf.positions, leaf.distances = positions[hit], distances[hit]
        found: list[tuple[np.ndarray, np.ndarray | None]] = []
        for plan in plans:
            stop = None if plan.limit is None else plan.offset + plan.limit
            if plan.rank is None:  # no rank: the filter's rows in insertion order, as Chroma
                rows = select(snap, self._con, where=plan.where, limit=plan.limit, offset=plan.offset)
                found.append((rows, None))
            else:
                rows, scores = ranked(snap, plan)
                found.append((rows[plan.offset : stop], scores[plan.offset : stop]))
        result = search_results(snap, plans, found)
        self._answered(snap)
        return result

    # -- time travel ---------------------------------------------------------------------
    def read_only_error(self) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"this collection is opened at version {self.pinned_version}, which is read-only; "
            "write through the collection itself, or restore(version) to make that state the latest"
        )

    def pinned(self, version: int) -> CollectionEngine:
        """A read-only engine over one committed version."""
        latest = self.snapshot().version
        if isinstance(version, int) and version > latest:  # named by another process: look again
            latest = self.snapshot(fresh=True).version
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= latest:
            raise InvalidArgumentError(f"version must be an int from 0 to {latest}, got {version!r}")
        try:
            manifest = Manifest.from_json(self.log.read(version))
        except FileNotFoundError:
            raise NotFoundError(f"version {version} is no longer retained (vacuumed)") from None
        engine = CollectionEngine(self.storage, self.collection_id, self._relative)
        engine.pinned_version = version
        engine._snapshot = Snapshot(manifest, engine.cache)
        _PINNED.add(engine)
        return engine

    def fork(self, directory: str) -> None:
        """Write version 0 of a fork of the version this engine reads into ``directory`` (a
        sibling of this collection's, relative to the root): it lists this collection's files,
        which stay shared until either side rewrites them."""
        target = self.storage.join(directory)
        parent, name = posixpath.split(self.directory)
        fork_name = posixpath.basename(target)
        if posixpath.dirname(target) != parent:
            raise InvalidArgumentError("a fork lives beside its source (same tenant and database)")
        # the marker comes first: from then on this collection's vacuum keeps what the fork reads
        forks.register(self.storage, self.directory, fork_name, name)
        snap = self.snapshot() if self.pinned_version is not None else self.snapshot(fresh=True)
        manifest = forks.fork_manifest(snap.manifest, name)
        for other in forks.owners(manifest) - {name}:
            forks.register(self.storage, f"{parent}/{other}", fork_name, name)
        if not VersionLog(self.storage, f"{target}/versions").try_commit(0, manifest.to_json()):
            raise InternalError(f"a collection already lives in {directory}")

    def fork_count(self) -> int:
        return forks.count(self.storage, self.directory)

    def pinned_versions(self) -> set[int]:
        """Versions that live read-only views of this collection in this process read."""
        return {
            e.pinned_version for e in list(_PINNED) if e._key == self._key and e.pinned_version is not None
        }

    def manifests(self) -> list[Manifest]:
        """Every retained version, oldest first (one small read each)."""
        return retained_manifests(self.log, self.snapshot().version)

    def version_at(self, timestamp: float) -> int:
        """The newest version committed at or before ``timestamp`` (seconds since the epoch)."""
        for version in range(self.snapshot().version, -1, -1):
            try:
                if Manifest.from_json(self.log.read(version)).timestamp <= timestamp:
                    return version
            except FileNotFoundError:
                break
        raise NotFoundError("no retained version is that old")

    def restore(self, version: int) -> int:
        """Commit the rows of ``version`` as the newest version; returns the new version."""
        old = self.pinned(version).snapshot().manifest

        def transform(m: Manifest) -> Manifest:
            # fields only ever grow, so the newest list names every field the old rows use
            return m.child("restore", fragments=old.fragments, next_seq=max(m.next_seq, old.next_seq))

        manifest = self.commit_transform(transform)
        assert manifest is not None
        return manifest.version

    def stats(self) -> dict[str, Any]:
        m = self.snapshot().manifest
        rows = sum(f.rows for f in m.fragments)
        live = m.live_rows
        indexed = sum(f.live_rows for f in m.fragments if f.index)
        extra = m.files() - {f.path for f in m.fragments}  # indexes and deletion files
        versions = [
            n for n in self.storage.listdir(self.log.directory) if n.startswith("v") and n.endswith(".json")
        ]
        return {
            "version": m.version,
            "versions": len(versions),
            "fragments": len(m.fragments),
            "unindexed_fragments": sum(1 for f in m.fragments if not f.index),
            "indexes": len({f.index for f in m.fragments if f.index}),
            "rows": rows,
            "live_rows": live,
            "dead_rows": rows - live,
            "indexed_fraction": round(indexed / live, 4) if live else 1.0,
            "dimension": m.dimension,
            "bytes": sum(f.bytes for f in m.fragments)
            + sum(self.storage.size(self.cache.path(p)) for p in extra),
        }
