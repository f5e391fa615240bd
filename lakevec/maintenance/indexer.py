"""The indexer: builds HNSW indexes after the commits that added the rows, in the background
and for callers that wait (``wait_for_index``, ``compact``).

Index keys are fragment rows plus a base (:mod:`lakevec.write.index`). The indexer folds the
unindexed tail into an open index by *adding* the tail's vectors to it (usearch grows a graph in
place), saves it under a new immutable name, and commits a manifest that points the fragments
at it. Queries search each index once and the small unindexed tail exactly.

Indexes are tiered by size. Every fold rewrites the index it extends, so while writes go on
(background folds) an index grows to ``HEAD_MAX_ROWS`` and the next rows start a new one: a fold
never writes more than that, and a collection's ingest does not slow as it grows. Folds that a
caller waits for (``wait_for_index``, ``compact``) grow an index up to ``GROUP_MAX_ROWS``, and
``compact`` merges the smaller indexes into the largest, so queries search few indexes.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from usearch.index import Index

from lakevec.engine import CollectionEngine
from lakevec.errors import corrupt
from lakevec.lake.forks import FORKS, foreign
from lakevec.lake.manifest import Manifest
from lakevec.maintenance.index_files import (
    ADD_CHUNK,
    key_end,
    max_key,
    save_index,
    saved_encoding,
    write_postings,
)
from lakevec.maintenance.merge import merge_small
from lakevec.maintenance.vacuum import vacuum
from lakevec.write.index import (
    PROJECTED,
    Encoding,
    fits,
    gather_tail,
    index_encoding,
    index_rows,
    insertion_order,
    new_index,
    striped,
)

FOLD_MIN_ROWS = 4096  # a smaller tail is searched exactly until wait_for_index()
FOLD_MAX_TAIL = 50_000  # never leave more than this for exact search while writes go on
QUIET_SECONDS = 0.2  # background folds wait for a pause this long in a stream of writes
HEAD_MAX_ROWS = 262_144  # background folds start a new index past this many rows
LEASE_SECONDS = 300.0  # a background fold's claim on its tail; an older claim is taken over
GROUP_MAX_ROWS = 2_000_000  # inline folds (wait_for_index, compact) grow an index up to this
AUTO_VACUUM_SECONDS = 3600.0  # background work vacuums at most this often
RETENTION_SECONDS = 7 * 86400.0  # ... keeping every version of the last 7 days (vacuum's default)


def stale_indexes(engine: CollectionEngine, manifest: Manifest, threshold: float) -> set[str]:
    """Indexes in which more than ``threshold`` of the keys no longer point at a live row."""
    live: dict[str, int] = {}
    for e in manifest.fragments:
        if e.index:
            live[e.index] = live.get(e.index, 0) + e.live_rows
    opened = engine._open_indexes(engine.snapshot())
    return {
        path for path, rows in live.items() if len(opened[path]) and 1 - rows / len(opened[path]) > threshold
    }


_RUNNING: weakref.WeakSet[Indexer] = weakref.WeakSet()


class _Stopped(Exception):
    """The process is exiting: a fold in progress is abandoned (nothing was committed)."""


@atexit.register
def _stop_all() -> None:
    """Stop background folds before the interpreter goes away under usearch's native threads."""
    indexers = list(_RUNNING)
    for indexer in indexers:
        indexer.stop()
    for indexer in indexers:
        for thread in (indexer._thread, indexer._merger):
            if thread is not None:
                thread.join(timeout=30)


BACKGROUND_NICE = 10  # background folds and merges yield the CPU to the caller's writes and reads


def _background_priority() -> None:
    """Lower this thread's scheduling priority (Linux: threads are tasks with their own nice
    value, inherited by the threads usearch starts from it), so a long background fold does not
    slow the ``add`` calls it runs beside. Elsewhere a no-op."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass


def _serve(indexer: weakref.ref[Indexer], wake: threading.Event, work: Callable[[Indexer], None]) -> None:
    """A background thread: ``work`` after each wake-up. It holds its indexer only while it
    works, so the thread keeps no engine alive; it ends when the indexer stops or is freed."""
    _background_priority()
    while True:
        wake.wait()
        wake.clear()
        current = indexer()
        if current is None or current._stopping:
            return
        work(current)
        del current


def _wake_all(*events: threading.Event) -> None:
    for event in events:
        event.set()


@dataclasses.dataclass
class _Head:
    """The index the indexer last wrote, kept in memory so extending it costs no reload."""

    path: str
    index: Index
    next_key: int
    encoding: Encoding  # how rows enter it


class Indexer:
    """Builds indexes for one collection, in a background thread and/or inline. It listens to
    its engine's commits unless ``LAKEVEC_AUTO_INDEX=0`` (bulk loads, measurements), which
    leaves indexing to :meth:`wait`."""

    def __init__(self, engine: CollectionEngine) -> None:
        self.engine = engine
        if os.environ.get("LAKEVEC_AUTO_INDEX", "1") != "0":
            engine.on_commit.append(self.notify)
        self._fold_lock = threading.RLock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._head: _Head | None = None
        self._stopping = False
        self.last_error: BaseException | None = None
        # small fragments are merged on their own thread, so they do not pile up behind a long
        # fold; a fold announces the fragments it is indexing and merges leave those alone
        self._merge_lock = threading.RLock()
        self._merge_wake = threading.Event()
        self._merger: threading.Thread | None = None
        self._folding: frozenset[str] = frozenset()
        self._threads = 0
        self._waiters = 0  # callers in wait(): a background fold then uses every core
        self._last_write = 0.0
        self._last_vacuum = time.monotonic()  # the first one an hour in: opening costs nothing

    def wait(self, timeout: float | None = None) -> None:
        """Index every committed row, inline (the background thread may be doing the same)."""
        if self.engine.pinned_version is not None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        self._waiters += 1
        try:
            while self.step(force=True):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError("indexing did not catch up in time")
        finally:
            self._waiters -= 1

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No background fold or merge runs inside this block (compaction)."""
        with self._fold_lock, self._merge_lock:
            yield

    def forget_head(self) -> None:
        """Start the next fold from the manifest, not from the index kept in memory."""
        with self._fold_lock:
            self._head = None

    def stop(self, wait: bool = False) -> None:
        """Stop the background threads (a fold in progress is abandoned); ``wait`` joins them."""
        self._stopping = True
        self._wake.set()
        self._merge_wake.set()
        if wait:
            for thread in (self._thread, self._merger):
                if thread is not None and thread is not threading.current_thread():
                    thread.join()

    # -- scheduling ----------------------------------------------------------------------
    def notify(self) -> None:
        """Called after every commit: the background thread decides whether to fold."""
        if self._stopping:
            return
        self._last_write = time.monotonic()
        if self._thread is None:
            me = weakref.ref(self)
            self._thread = threading.Thread(
                target=_serve,
                args=(me, self._wake, Indexer._fold_pending),
                name="lakevec-indexer",
                daemon=True,
            )
            self._merger = threading.Thread(
                target=_serve,
                args=(me, self._merge_wake, Indexer._merge_pending),
                name="lakevec-merger",
                daemon=True,
            )
            # an engine nobody uses any more is freed, and its threads end with it
            weakref.finalize(self, _wake_all, self._wake, self._merge_wake)
            _RUNNING.add(self)
            self._thread.start()
            self._merger.start()
        self._wake.set()
        self._merge_wake.set()

    def _merge_pending(self) -> None:
        try:
            while not self._stopping and self.merge():
                pass
        except BaseException as exc:  # the fold thread and wait_for_index merge too
            self.last_error = exc

    def merge(self) -> bool:
        """Merge small fragments that no fold is indexing; True if a merge was committed."""
        with self._merge_lock:
            return merge_small(self.engine, exclude=self._folding)

    def _fold_pending(self) -> None:
        try:
            while self._settled() and self.step(force=False):
                pass
            self._vacuum_if_due()
            self.last_error = None
        except _Stopped:
            pass
        except BaseException as exc:  # keep serving; wait_for_index redoes the work inline and raises
            self.last_error = exc

    def _vacuum_if_due(self) -> None:
        """Once per AUTO_VACUUM_SECONDS of background work, delete what no version of the
        retention window needs (``vacuum()``'s default window): merged-away fragments and
        superseded files do not pile up on a collection nobody vacuums by hand."""
        now = time.monotonic()
        if self._stopping or now - self._last_vacuum < AUTO_VACUUM_SECONDS:
            return
        self._last_vacuum = now
        vacuum(self.engine, RETENTION_SECONDS, 1, False)

    def _settled(self) -> bool:
        """Wait out a stream of writes (a fold competes with them for the cores and the GIL,
        and adding 1,000 rows to an index costs more than committing them) unless its tail
        already holds FOLD_MAX_TAIL rows; False if the indexer is stopping."""
        while not self._stopping:
            idle = time.monotonic() - self._last_write
            if idle >= QUIET_SECONDS:
                return True
            manifest = self.engine.snapshot().manifest
            if sum(e.live_rows for e in manifest.fragments if e.index is None) >= FOLD_MAX_TAIL:
                return True
            time.sleep(QUIET_SECONDS - idle)
        return False

    def step(self, *, force: bool) -> bool:
        """One unit of background work: merge small fragments, else fold the tail into an index."""
        with self._fold_lock:
            if self.merge():
                return True
            return self.fold(force=force)

    # -- one fold ------------------------------------------------------------------------
    def fold(self, *, force: bool) -> bool:
        """Add unindexed fragments to an index (see the module's tiers); True if it did work
        (committed, or found that another process had indexed that tail first)."""
        with self._fold_lock:
            with self._merge_lock:  # no merge half way: the tail is taken from a settled version
                snap = self.engine.snapshot()
                manifest = snap.manifest
                tail = [i for i, e in enumerate(manifest.fragments) if e.index is None and e.live_rows > 0]
                if not tail or manifest.dimension is None:
                    return False
                self._folding = frozenset(manifest.fragments[i].id for i in tail)
            cap = GROUP_MAX_ROWS if force else HEAD_MAX_ROWS
            sizes = index_rows(manifest)
            least = 1 if force else background_fold_rows(manifest)
            # extend the newest index (the one holding the highest keys) if it has room for a
            # fold, else start a new one: each index's keys stay one range above the older
            # indexes', so one native call can search them all (read/search.py)
            newest = max(sizes, key=lambda p: key_end(manifest, p), default=None)
            head_path = newest if newest is not None and sizes[newest] + least <= cap else None
            tail = _fill(tail, manifest, cap - sizes.get(head_path, 0) if head_path else cap)
            if sum(manifest.fragments[i].rows for i in tail) < least:
                self._folding = frozenset()
                return False
            # a background fold claims its tail, so the other processes writing this root (the
            # workers of `lakevec run --workers N`) do not build the same index at the same time;
            # a caller that waits (wait_for_index, compact) folds regardless
            lease = None if force else self._claim(manifest.fragments[tail[0]].id)
            if lease is False:
                self._folding = frozenset()
                return False
            self._folding = frozenset(manifest.fragments[i].id for i in tail)

            # a background fold leaves one core to the writers; an inline one (wait_for_index,
            # compact) has the caller waiting and uses them all
            self._threads = 0 if force else max(1, (os.cpu_count() or 2) - 1)
            try:
                return self._fold(snap, tail, head_path)
            except BaseException:
                self._head = None  # the in-memory copy may hold uncommitted rows
                raise
            finally:
                self._folding = frozenset()
                if lease:
                    self.engine.storage.delete(lease)

    def _claim(self, first: str) -> str | bool:
        """Claim the tail that starts at fragment ``first`` for this process's background fold:
        the lease's path, or False while another live process holds it. A claim expires after
        LEASE_SECONDS, or at once when its process (on this host) has exited."""
        storage = self.engine.storage
        path = self.engine.cache.path(f"leases/fold-{first}.json")
        claim = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}).encode()
        if storage.put_if_absent(path, claim):
            return path
        try:
            held = json.loads(storage.read_bytes(path))
            live = time.time() - float(held["time"]) < LEASE_SECONDS and _alive(held["host"], held["pid"])
        except (OSError, ValueError, KeyError, TypeError):  # released in between, or unreadable
            live = False
        if live:
            return False
        storage.delete(path)
        return path if storage.put_if_absent(path, claim) else False

    def _fold(self, snap, tail: list[int], head_path: str | None) -> bool:
        manifest = snap.manifest
        hnsw = manifest.config["hnsw"]
        head = self._open_head(head_path, manifest) if head_path is not None else None
        if head is not None and not fits(snap, tail, head.encoding):
            head_path, head = None, None  # the head's axes miss too much of these rows: a new index
        new_projection = None  # a projection file this fold writes
        if head is None:
            chosen = index_encoding(snap, tail)
            encoding = saved_encoding(self.engine, chosen)
            new_projection = encoding.projection if chosen.projection is None else None
            index = new_index(manifest.dimension or 0, hnsw, encoding)
            head = _Head("", index, self._next_key(manifest), encoding)
        keys, vectors, bases = gather_tail(snap, tail, head.next_key, head.encoding)
        order = insertion_order(vectors)
        for a in range(0, len(order), ADD_CHUNK):
            # in chunks: a background fold takes every core from the next chunk on once a
            # caller waits for the index (wait_for_index)
            threads = 0 if self._waiters else self._threads
            chunk = striped(order[a : a + ADD_CHUNK], threads)
            head.index.add(keys[chunk], vectors[chunk], threads=threads, progress=self._keep_going)
            if self._stopping:
                raise _Stopped
        del vectors
        key = head.next_key + sum(manifest.fragments[i].rows for i in tail)
        relative, route = save_index(self.engine, head.index)
        storage = self.engine.storage
        texts = self._write_postings(snap, tail)
        members = {e.id for e in manifest.fragments if head_path is not None and e.index == head_path}

        def point(m: Manifest) -> Manifest | None:
            fragments, folded = [], False
            for e in m.fragments:
                if e.id in bases and e.index is None:
                    e = dataclasses.replace(
                        e,
                        index=relative,
                        index_base=bases[e.id],
                        index_scale=head.encoding.scale,
                        index_codec=head.encoding.codec,
                        index_route=route,
                        index_projection=head.encoding.projection,
                    )
                    if e.id in texts and e.text is None:
                        e = dataclasses.replace(e, text=texts[e.id])
                    folded = True
                elif e.id in members and e.index == head_path:
                    e = dataclasses.replace(e, index=relative, index_route=route)
                fragments.append(e)
            # another process indexed (or compacted) these rows first: nothing left to commit
            return m.child("index", fragments=tuple(fragments)) if folded else None

        committed = self.engine.commit_transform(point)
        if committed is None:
            for path in [relative, route, new_projection, *texts.values()]:
                if path:
                    storage.delete(self.engine.cache.path(path))
            self._head = None
            return True  # the tail moved on: look again
        self._head = _Head(relative, head.index, key, head.encoding)
        if head_path is not None:
            self._retire(head_path, committed)
            head_route = next((e.index_route for e in manifest.fragments if e.index == head_path), None)
            if head_route:
                self._retire(head_route, committed)
        return True

    def _write_postings(self, snap, tail: list[int]) -> dict[str, str]:
        def check() -> None:
            if self._stopping:
                raise _Stopped

        return write_postings(self.engine, snap, tail, check)

    def _retire(self, path: str, latest: Manifest) -> None:
        """Delete the index file a fold just superseded: an index is derived from its fragments,
        so an older version that still lists it searches those rows exactly instead (no data
        is lost, and the time-travel window stays). Kept while a read-only view in this process
        reads an older version."""
        if path in latest.files() or any(v < latest.version for v in self.engine.pinned_versions()):
            return
        if foreign(path) or self.engine.storage.listdir(f"{self.engine.directory}/{FORKS}"):
            return  # another collection's file, or one a fork may read: vacuum decides
        self.engine.storage.delete(self.engine.cache.path(path))

    def _keep_going(self, done, total):  # usearch checks these annotations as real types
        return not self._stopping

    _keep_going.__annotations__ = {"done": int, "total": int, "return": bool}

    def _next_key(self, manifest: Manifest) -> int:
        """The first key of a new index: above every index's (those of a dropped fragment stay
        in the index that the indexer last wrote, known here; elsewhere they only cost a
        candidate)."""
        ends = [key_end(manifest, p) for p in index_rows(manifest)]
        if self._head is not None:
            ends.append(self._head.next_key)
        return max(ends, default=0)

    def _open_head(self, path: str, manifest: Manifest) -> _Head:
        if self._head is not None and self._head.path == path:
            return self._head
        data = self.engine.storage.read_immutable(self.engine.cache.path(path))
        index = Index.restore(data)  # a private, writable copy
        if index is None:
            raise corrupt(self.engine.cache.path(path), "index", ValueError("not a usearch index"))
        next_key = max_key(index) + 1 if len(index) else 0
        entry = next(e for e in manifest.fragments if e.index == path)
        projector = self.engine.cache.projection(entry.index_projection) if entry.index_projection else None
        if entry.index_codec == PROJECTED and projector is None:
            raise corrupt(self.engine.cache.path(path), "index", ValueError("its projection is gone"))
        encoding = Encoding(entry.index_scale, entry.index_codec, entry.index_projection, projector)
        return _Head(path, index, next_key, encoding)


def _alive(host: str, pid: int) -> bool:
    """Whether process ``pid`` of ``host`` may still run (another host's: assumed so)."""
    if host != socket.gethostname() or os.name == "nt":  # Windows' os.kill(pid, 0) sends Ctrl-C
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def background_fold_rows(manifest: Manifest) -> int:
    """The fewest unindexed rows a background fold takes on: a smaller tail is searched exactly
    until more rows come or wait_for_index() folds it."""
    return min(FOLD_MAX_TAIL, max(FOLD_MIN_ROWS, sum(index_rows(manifest).values()) // 8))


def _fill(tail: list[int], manifest: Manifest, room: int) -> list[int]:
    """The tail fragments, oldest first, that fit in ``room`` rows (at least one)."""
    taken, rows = [], 0
    for i in tail:
        if taken and rows + manifest.fragments[i].rows > room:
            break
        taken.append(i)
        rows += manifest.fragments[i].rows
    return taken
