"""Several writers on one collection: threads in one process and separate OS processes.
Nothing committed is lost, and the final state is that of some serial order of the writes."""

from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import pytest

import lakevec
from tests.conftest import make_root


def _writer(root: str, worker: int, batches: int, errors: list | None = None) -> None:
    try:
        _write(root, worker, batches)
    except BaseException as exc:
        if errors is None:
            raise
        errors.append(exc)


def _write(root: str, worker: int, batches: int) -> None:
    col = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    for b in range(batches):
        ids = [f"w{worker}-b{b}-{i}" for i in range(5)]
        col.add(ids=ids, embeddings=np.full((5, 2), worker, dtype=np.float32), metadatas=[{"w": worker}] * 5)
        # every worker also upserts the same shared ids: the last committed upsert wins
        col.upsert(
            ids=["hot-0", "hot-1"],
            embeddings=[[worker, b], [worker, b]],
            metadatas=[{"w": worker, "b": b}] * 2,
        )
        if b % 2:
            col.delete(ids=[f"w{worker}-b{b}-0"])


def _check(root: str, workers: int, batches: int) -> None:
    col = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    got = col.get(include=["metadatas", "embeddings"])
    expected = {
        f"w{w}-b{b}-{i}"
        for w in range(workers)
        for b in range(batches)
        for i in range(5)
        if not (b % 2 and i == 0)
    } | {"hot-0", "hot-1"}
    assert set(got["ids"]) == expected
    assert len(got["ids"]) == len(expected) == col.count()
    hot = {
        i: (m, e) for i, m, e in zip(got["ids"], got["metadatas"], got["embeddings"]) if i.startswith("hot")
    }
    # both hot rows were always written together, so they hold the same (worker, batch) pair
    assert hot["hot-0"][0] == hot["hot-1"][0]
    np.testing.assert_array_equal(hot["hot-0"][1], [hot["hot-0"][0]["w"], hot["hot-0"][0]["b"]])
    # versions form one unbroken chain: every commit is there exactly once
    engine = col._engine
    latest = engine.log.latest()
    parents = [engine.log.read(v)["parent"] for v in range(1, latest + 1)]
    assert parents == list(range(latest))


def test_threads_share_one_collection(root):
    lakevec.PersistentClient(root).create_collection("shared", embedding_function=None)
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_writer, args=(root, w, 6, errors)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
        assert not t.is_alive()
    assert not errors
    _check(root, 4, 6)


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_processes_share_one_collection(kind, tmp_path, request):
    """Writers in separate OS processes (on S3 they commit by conditional PUT)."""
    root = make_root(kind, tmp_path, request)
    lakevec.PersistentClient(root).create_collection("shared", embedding_function=None)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(root, w, 6)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)
        assert p.exitcode == 0, f"{p.name} exit code {p.exitcode} (None: still running after 600 s)"
    _check(root, 3, 6)


def test_readers_see_consistent_versions_while_writing(tmp_path):
    root = str(tmp_path / "root")
    col = lakevec.PersistentClient(root).create_collection("shared", embedding_function=None)
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def read():
        try:
            reader = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
            while not stop.is_set():
                seen.append(len(reader.get(include=[])["ids"]))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    t = threading.Thread(target=read)
    t.start()
    for b in range(15):
        col.add(ids=[f"{b}-{i}" for i in range(10)], embeddings=np.zeros((10, 2)))
    stop.set()
    t.join(timeout=600)
    assert not errors
    # batches are all-or-nothing: a reader never sees part of one, and never goes back in time
    assert all(n % 10 == 0 for n in seen) and seen == sorted(seen)
    assert col.count() == 150


def test_threads_filter_while_others_write(root):
    col = lakevec.PersistentClient(root).create_collection("mixed", embedding_function=None)
    col.add(
        ids=[f"seed{i}" for i in range(50)],
        embeddings=np.zeros((50, 2)),
        metadatas=[{"k": i % 5} for i in range(50)],
    )
    errors: list[BaseException] = []
    stop = threading.Event()

    def read():
        try:
            while not stop.is_set():
                got = col.get(where={"k": {"$in": [1, 2]}}, where_document=None, include=["metadatas"])
                assert all(m["k"] in (1, 2) for m in got["metadatas"])
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for b in range(20):
        col.upsert(
            ids=[f"n{b}-{i}" for i in range(5)],
            embeddings=np.ones((5, 2)),
            metadatas=[{"k": i} for i in range(5)],
        )
    stop.set()
    for t in readers:
        t.join(timeout=600)
    assert not errors
    assert col.get(where={"k": 1}, include=[])["ids"][:2] == ["seed1", "seed6"]


def test_racing_deletes_on_one_fragment_both_land(root):
    """Two writers plan deletes in the same fragment on the same version: the loser's deletion
    file must not overwrite or remove the winner's (names are unique per attempt)."""
    a = lakevec.PersistentClient(root).create_collection("race", embedding_function=None)
    a.add(ids=[f"r{i}" for i in range(10)], embeddings=np.eye(10)[:, :3])
    b = lakevec.PersistentClient(root).get_collection("race", embedding_function=None)
    engine = b._engine
    original = engine.log.try_commit
    raced = []

    def commit_after_the_other_writer(version, document):
        if not raced:
            raced.append(version)
            a.delete(ids=["r1"])  # wins this version while b is about to commit it
        return original(version, document)

    engine.log.try_commit = commit_after_the_other_writer
    b.delete(ids=["r2"])
    assert raced
    expected = [f"r{i}" for i in range(10) if i not in (1, 2)]
    for reader in (a, b, lakevec.PersistentClient(root).get_collection("race", embedding_function=None)):
        assert reader.get()["ids"] == expected


def _write_and_update(root: str, worker: int, batches: int) -> None:
    _write(root, worker, batches)
    col = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    for b in range(batches):
        col.update(ids=[f"w{worker}-b{b}-1"], metadatas=[{"w": worker, "updated": b}])


def _read_until(root: str, stop: str, reads_file: str) -> None:
    """A reader process: every get() must show each batch whole (5 rows, or 4 after its delete)
    or not at all, and queries must answer, while writers and a compaction commit."""
    import os
    import time

    col = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    reads = 0
    while reads == 0 or not os.path.exists(stop):  # at least one read, however late it starts
        got = col.get(include=[])
        batches: dict[str, int] = {}
        for id_ in got["ids"]:
            if not id_.startswith("hot"):
                key = id_.rsplit("-", 1)[0]
                batches[key] = batches.get(key, 0) + 1
        assert all(n in (4, 5) for n in batches.values()), batches
        if got["ids"]:
            col.query(query_embeddings=[[1.0, 1.0]], n_results=3)
        reads += 1
        time.sleep(0.01)
    with open(reads_file, "w") as f:
        f.write(str(reads))


def _compact_later(root: str) -> None:
    """Compact once the writers have committed something, again until a compaction commits
    (one that finds nothing to merge, or loses every race to a background merge, commits
    nothing). No clock: the test's join bounds it."""
    import time

    col = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    while col.count() == 0:
        time.sleep(0.2)
    while True:
        col.compact()
        if "compact" in [v["operation"] for v in col.versions()]:
            return
        time.sleep(0.3)


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.slow)])  # s3: ~70 s
def test_four_writers_readers_and_a_compaction(kind, tmp_path, request):
    """4 writer processes (add, upsert of shared ids, delete, update), 2 reader processes and a
    compaction in the middle: nothing committed is lost, every read saw whole batches, no hang."""
    root = make_root(kind, tmp_path, request)
    lakevec.PersistentClient(root).create_collection("shared", embedding_function=None)
    ctx = mp.get_context("spawn")
    stop = str(tmp_path / "stop")
    writers = [ctx.Process(target=_write_and_update, args=(root, w, 8)) for w in range(4)]
    readers = [
        ctx.Process(target=_read_until, args=(root, stop, str(tmp_path / f"reads{r}"))) for r in range(2)
    ]
    compactor = ctx.Process(target=_compact_later, args=(root,))
    for p in [*readers, *writers, compactor]:
        p.start()
    # generous bounds: they only decide how long a hang takes to fail, never whether a slow run passes
    for p in [*writers, compactor]:
        p.join(timeout=900)
        assert p.exitcode == 0, f"{p.name} exit code {p.exitcode} (None: still running after 900 s)"
    (tmp_path / "stop").write_text("")
    for p in readers:
        p.join(timeout=600)
        assert p.exitcode == 0, f"{p.name} exit code {p.exitcode}"
    assert all(int((tmp_path / f"reads{r}").read_text()) > 0 for r in range(2))
    _check(root, 4, 8)
    col = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    got = col.get(ids=[f"w{w}-b{b}-1" for w in range(4) for b in range(8)], include=["metadatas"])
    assert all(m.get("updated") is not None for m in got["metadatas"])
    assert "compact" in [v["operation"] for v in col.versions()]


def test_concurrent_get_or_create_returns_one_working_collection(root):
    """Clients racing to get_or_create one name all get the same collection, and it opens at
    once (its first version exists before the catalog names it); the losers leave no files."""
    barrier = threading.Barrier(6)
    got: list = []
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            client = lakevec.PersistentClient(root)
            barrier.wait()
            col = client.get_or_create_collection("raced", embedding_function=None)
            col.add(ids=[f"t{i}"], embeddings=[[float(i), 0.0]])
            got.append(str(col.id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert len(set(got)) == 1
    col = lakevec.PersistentClient(root).get_collection("raced", embedding_function=None)
    assert col.count() == 6
    storage = col._engine.storage
    assert storage.listdir(storage.join("collections")) == [got[0]]
