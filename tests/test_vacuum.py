"""vacuum keeps every retained version intact and removes everything else, orphans included."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import numpy as np
import pytest

import lakevec
from lakevec.errors import InvalidArgumentError, NotFoundError
from lakevec.lake.manifest import FILE_DIRS


def _files(col) -> set[str]:
    engine = col._engine
    return {
        f"{sub}/{name}"
        for sub in FILE_DIRS
        for name, _, _ in engine.storage.list_files(engine.cache.path(sub))
    }


def _history(col) -> None:
    rng = np.random.default_rng(5)
    for b in range(6):
        ids = [f"b{b}-{i}" for i in range(30)]
        col.add(ids=ids, embeddings=rng.random((30, 4)), metadatas=[{"b": b}] * 30)
        col.upsert(ids=[f"b{b}-0", "hot"], embeddings=rng.random((2, 4)), metadatas=[{"b": -b}] * 2)
        col.delete(ids=[f"b{b}-1"])
    col.wait_for_index()


def test_vacuum_removes_unneeded_files_and_keeps_results(root):
    col = lakevec.PersistentClient(root).create_collection("vac", embedding_function=None)
    _history(col)
    before = col.get(include=["embeddings", "metadatas"])
    q = np.random.default_rng(1).random((3, 4))
    hits = col.query(query_embeddings=q, n_results=7)
    latest = col._engine.snapshot().manifest
    assert _files(col) > latest.files()  # superseded deletion files, fragments, indexes

    planned = col.vacuum(older_than=timedelta(0), dry_run=True)
    assert planned["deleted_files"] and planned["kept_versions"] == [latest.version]
    assert _files(col) > latest.files()  # a dry run deletes nothing

    done = col.vacuum(older_than=timedelta(0))
    assert sorted(done["deleted_files"]) == sorted(planned["deleted_files"])
    assert _files(col) == latest.files()
    assert [v["version"] for v in col.versions()] == [latest.version]
    for reader in (col, lakevec.PersistentClient(root).get_collection("vac", embedding_function=None)):
        after = reader.get(include=["embeddings", "metadatas"])
        assert after["ids"] == before["ids"] and after["metadatas"] == before["metadatas"]
        np.testing.assert_array_equal(after["embeddings"], before["embeddings"])
        assert reader.query(query_embeddings=q, n_results=7)["ids"] == hits["ids"]
    col.add(ids=["after"], embeddings=[[0.5, 0.5, 0.5, 0.5]])  # writes go on
    assert col.count() == len(before["ids"]) + 1


def test_retained_versions_stay_readable(collection):
    _history(collection)
    latest = collection.version
    states = {v: collection.at(v).get()["ids"] for v in range(latest - 2, latest + 1)}
    result = collection.vacuum(older_than=timedelta(0), keep_versions=3)
    assert result["kept_versions"] == list(range(latest - 2, latest + 1))
    for version, ids in states.items():
        assert collection.at(version).get()["ids"] == ids
    with pytest.raises(NotFoundError):
        collection.at(latest - 3)
    # and the time window: everything just committed is inside a one-hour window
    assert collection.vacuum(older_than=timedelta(hours=1))["deleted_files"] == []


def test_orphans_of_crashed_writes_go_only_when_old(tmp_path):
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("vac", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1.0, 2.0]])
    data = os.path.join(col._engine.directory, "data")
    old, fresh = os.path.join(data, "old-orphan.parquet"), os.path.join(data, "fresh-orphan.parquet")
    for path in (old, fresh):
        with open(path, "wb") as f:
            f.write(b"PAR1 never committed")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    result = col.vacuum(older_than=timedelta(minutes=10))
    assert result["deleted_files"] == ["data/old-orphan.parquet"]
    assert os.path.exists(fresh) and not os.path.exists(old)  # a write in flight is never touched
    assert col.get()["ids"] == ["a"]


def test_vacuum_arguments_and_read_only(collection):
    collection.add(ids=["a"], embeddings=[[1.0, 2.0]])
    for bad in ({"older_than": timedelta(seconds=-1)}, {"keep_versions": 0}, {"older_than": "1d"}):
        with pytest.raises(InvalidArgumentError):
            collection.vacuum(**bad)
    with pytest.raises(InvalidArgumentError, match="read-only"):
        collection.at(0).vacuum()


def test_vacuum_keeps_versions_open_in_this_process(collection):
    _history(collection)
    old_version = 3
    old = collection.at(old_version)
    expected = old.get(include=["embeddings"])
    kept = collection.vacuum(older_than=timedelta(0))["kept_versions"]
    assert old_version in kept
    got = old.get(include=["embeddings"])
    assert got["ids"] == expected["ids"]
    assert collection.at(old_version).count() == len(expected["ids"])
    del old, got
    import gc

    gc.collect()
    assert old_version not in collection.vacuum(older_than=timedelta(0))["kept_versions"]


def test_a_superseded_index_goes_at_once_and_its_version_is_searched_exactly(root):
    """A fold that extends an index saves it under a new name and deletes the old file: an
    index is derived data, so the version that listed it searches those rows exactly."""
    col = lakevec.PersistentClient(root).create_collection("idx", embedding_function=None)
    x = np.random.default_rng(3).random((6000, 8)).astype(np.float32)
    col.add(ids=[f"r{i}" for i in range(5000)], embeddings=x[:5000])
    col.wait_for_index()
    first = col.version
    old_indexes = {e.index for e in col._engine.snapshot().manifest.fragments}
    col.add(ids=[f"r{i}" for i in range(5000, 6000)], embeddings=x[5000:])
    col.wait_for_index()
    latest = col._engine.snapshot().manifest
    new_indexes = {e.index for e in latest.fragments}
    assert None not in new_indexes and old_indexes.isdisjoint(new_indexes)
    assert {f for f in _files(col) if f.startswith("index/")} == {
        f for f in latest.files() if f.startswith("index/")
    }
    queries = x[[1, 2500, 4999]] + 0.01
    d = ((x[:5000, None, :] - queries[None]) ** 2).sum(-1).T
    truth = [[f"r{i}" for i in row] for row in np.argsort(d, axis=1)[:, :5]]
    assert col.at(first).query(query_embeddings=queries, n_results=5)["ids"] == truth
    assert col.at(first).count() == 5000
