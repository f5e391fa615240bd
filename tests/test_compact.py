"""compact() leaves every result unchanged, drops dead rows, rebases over concurrent writes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import lakevec
from lakevec.errors import InvalidArgumentError


def _exact(col, q, k):
    got = col.get(include=["embeddings"])
    vectors = np.asarray(got["embeddings"])
    d = ((vectors[None, :, :] - q[:, None, :]) ** 2).sum(-1)
    return [[got["ids"][j] for j in np.argsort(row, kind="stable")[:k]] for row in d]


def _fill(col, rng, batches=6, rows=40):
    for b in range(batches):
        ids = [f"b{b}-{i}" for i in range(rows)]
        col.add(ids=ids, embeddings=rng.random((rows, 4)), metadatas=[{"b": b, "i": i} for i in range(rows)])
        col.delete(ids=ids[::3])
    col.upsert(ids=["b0-1", "b5-2"], embeddings=rng.random((2, 4)), metadatas=[{"b": 99, "i": 0}] * 2)


def test_compact_keeps_results_and_drops_dead_rows(root):
    col = lakevec.PersistentClient(root).create_collection("cmp", embedding_function=None)
    rng = np.random.default_rng(2)
    _fill(col, rng)
    before = col.get(include=["embeddings", "metadatas"])
    assert col.stats()["dead_rows"] > 0 and col.stats()["fragments"] > 1
    report = col.compact()
    stats = col.stats()
    assert stats["dead_rows"] == 0 and stats["fragments"] == 1 == report["fragments_after"]
    assert stats["indexed_fraction"] == 1.0 and col.versions()[-1]["operation"] in ("compact", "index")
    after = col.get(include=["embeddings", "metadatas"])
    assert after["ids"] == before["ids"] and after["metadatas"] == before["metadatas"]
    np.testing.assert_array_equal(after["embeddings"], before["embeddings"])
    q = rng.random((4, 4))
    assert col.query(query_embeddings=q, n_results=6)["ids"] == _exact(col, q, 6)
    reopened = lakevec.PersistentClient(root).get_collection("cmp", embedding_function=None)
    assert reopened.get()["ids"] == before["ids"]
    assert col.at(1).count() == 40  # history before the compaction stays readable


def test_compact_rebases_over_concurrent_writes(tmp_path, monkeypatch):
    from lakevec.maintenance import compact as compact_module

    root = str(tmp_path / "root")
    col = lakevec.PersistentClient(root).create_collection("cmp", embedding_function=None)
    rng = np.random.default_rng(4)
    _fill(col, rng, batches=3)
    other = lakevec.PersistentClient(root).get_collection("cmp", embedding_function=None)
    original = compact_module.write_fragment
    calls = []

    def write_then_race(*args, **kwargs):
        entry = original(*args, **kwargs)
        if not calls:  # another writer commits while the compaction is between read and commit
            other.delete(ids=["b0-1", "b1-1"])
            other.upsert(ids=["b2-2"], embeddings=[[9.0, 9.0, 9.0, 9.0]], metadatas=[{"b": "new"}])
            other.add(ids=["fresh"], embeddings=[[1.0, 1.0, 1.0, 1.0]])
        calls.append(entry)
        return entry

    monkeypatch.setattr(compact_module, "write_fragment", write_then_race)
    expected = other.get(include=["metadatas"])  # before the race
    col.compact()
    got = col.get(include=["metadatas", "embeddings"])
    ids = set(got["ids"])
    assert "b0-1" not in ids and "b1-1" not in ids  # deleted meanwhile: stays deleted
    assert "fresh" in ids  # added meanwhile: kept
    by_id = dict(zip(got["ids"], got["metadatas"]))
    assert by_id["b2-2"] == {"b": "new", "i": 2}  # updated meanwhile: the update wins, once
    assert got["ids"].count("b2-2") == 1
    assert ids == (set(expected["ids"]) - {"b0-1", "b1-1"}) | {"fresh"}
    assert col.count() == len(ids)


def test_compact_leaves_an_index_of_live_rows_only(collection):
    rng = np.random.default_rng(8)
    collection.add(ids=[f"r{i}" for i in range(6000)], embeddings=rng.random((6000, 8)))
    collection.wait_for_index()
    collection.delete(ids=[f"r{i}" for i in range(0, 6000, 2)] + [f"r{i}" for i in range(1, 3000, 2)])
    collection.compact()
    engine = collection._engine
    opened = engine._open_indexes(engine.snapshot())
    assert [len(i) for i in opened.values()] == [1500]
    q = rng.random((3, 8))
    assert collection.query(query_embeddings=q, n_results=5)["ids"] == _exact(collection, q, 5)


def test_compact_arguments(collection):
    with pytest.raises(InvalidArgumentError):
        collection.compact(target_rows=0)
    collection.add(ids=["a"], embeddings=[[1.0, 2.0]])
    with pytest.raises(InvalidArgumentError, match="read-only"):
        collection.at(1).compact()


def _compactor(root: str, rounds: int) -> None:
    col = lakevec.PersistentClient(root).get_collection("shared", embedding_function=None)
    for _ in range(rounds):
        col.compact(target_rows=50)


def test_compaction_and_writers_in_separate_processes_lose_nothing(tmp_path):
    import multiprocessing as mp

    from tests.test_concurrency import _check, _writer

    root = str(tmp_path / "root")
    lakevec.PersistentClient(root).create_collection("shared", embedding_function=None)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(root, w, 6)) for w in range(2)]
    procs.append(ctx.Process(target=_compactor, args=(root, 6)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=900)
        assert p.exitcode == 0, f"{p.name} exit code {p.exitcode} (None: still running after 900 s)"
    _check(root, 2, 6)


def test_background_folds_tier_indexes_and_compact_merges_them(tmp_path, monkeypatch):
    """While writes go on, an index stops growing at HEAD_MAX_ROWS and the next rows start a
    new one (no fold rewrites a large index); compact() merges the tiers into one index."""
    from lakevec.maintenance import indexer as index_module

    monkeypatch.setattr(index_module, "HEAD_MAX_ROWS", 300)
    monkeypatch.setattr(index_module, "FOLD_MIN_ROWS", 50)
    monkeypatch.setenv("LAKEVEC_AUTO_INDEX", "0")  # folds are stepped here, as the thread would
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("tiers", embedding_function=None)
    rng = np.random.default_rng(5)
    for b in range(12):
        col.add(ids=[f"r{b}-{i}" for i in range(100)], embeddings=rng.random((100, 4)))
        while col._indexer.step(force=False):
            pass
    sizes = index_module.index_rows(col._engine.snapshot().manifest)
    assert len(sizes) >= 3 and max(sizes.values()) <= 300 + 100
    q = rng.random((5, 4))
    assert col.query(query_embeddings=q, n_results=7)["ids"] == _exact(col, q, 7)

    report = col.compact()
    assert report["indexes_merged"] == len(sizes) - 1
    merged = index_module.index_rows(col._engine.snapshot().manifest)
    assert len(merged) == 1 and sum(merged.values()) == 1200
    assert col.stats()["indexed_fraction"] == 1.0
    assert col.query(query_embeddings=q, n_results=7)["ids"] == _exact(col, q, 7)


def test_background_folds_wait_for_a_pause_in_the_writes(tmp_path, monkeypatch):
    """A fold waits while commits keep coming (unless the unindexed tail is full), then runs.
    The indexer's clock is a fake one that sleeping advances, so no timing is measured."""
    import types

    from lakevec.maintenance import indexer as index_module

    clock = types.SimpleNamespace(now=1024.0, slept=[])  # values exact in binary
    me = threading.current_thread()

    def sleep(seconds):
        if threading.current_thread() is not me:  # an indexer thread an earlier test left
            return time.sleep(seconds)
        clock.slept.append(seconds)
        clock.now += seconds

    fake_time = types.SimpleNamespace(
        monotonic=lambda: clock.now if threading.current_thread() is me else time.monotonic(), sleep=sleep
    )
    monkeypatch.setattr(index_module, "time", fake_time)
    monkeypatch.setattr(index_module, "QUIET_SECONDS", 0.5)
    monkeypatch.setattr(index_module, "FOLD_MAX_TAIL", 250)
    monkeypatch.setenv("LAKEVEC_AUTO_INDEX", "0")
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("quiet", embedding_function=None)
    indexer = col._indexer
    col.add(ids=[f"a{i}" for i in range(100)], embeddings=np.random.default_rng(0).random((100, 4)))
    indexer._last_write = clock.now - 0.25  # a commit 0.25 s ago
    assert indexer._settled()
    assert clock.slept == [0.25]  # waited out the rest of the pause
    col.add(ids=[f"b{i}" for i in range(200)], embeddings=np.random.default_rng(1).random((200, 4)))
    indexer._last_write = clock.now  # a commit just now
    clock.slept.clear()
    assert indexer._settled()  # 300 unindexed rows: a full tail folds at once
    assert clock.slept == []
    indexer.stop()
    assert not indexer._settled()
