"""Time travel: every committed version stays readable (get, query, to_arrow, DuckDB) and equal
to the state right after its commit; old versions are read-only; restore commits an old state."""

from __future__ import annotations

import time

import numpy as np
import pytest

import lakevec
from lakevec.errors import InvalidArgumentError, NotFoundError


def _state(col) -> dict:
    got = col.get(include=["embeddings", "metadatas", "documents"])
    return {
        i: (np.asarray(e).tolist(), m, d)
        for i, e, m, d in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"])
    }


def _exact_top(state: dict, q: np.ndarray, k: int) -> list[str]:
    ids = sorted(state)
    vectors = np.array([state[i][0] for i in ids], dtype=np.float32)
    d = ((vectors - q) ** 2).sum(axis=1)
    return [ids[j] for j in np.argsort(d, kind="stable")[:k]]


def test_every_version_reads_as_it_was(root):
    col = lakevec.PersistentClient(root).create_collection("travel", embedding_function=None)
    rng = np.random.default_rng(3)
    states = {col.version: {}}
    for step in range(8):
        ids = [f"s{step}-{i}" for i in range(20)]
        col.add(ids=ids, embeddings=rng.random((20, 4)), metadatas=[{"step": step}] * 20, documents=ids)
        states[col.version] = _state(col)
        if step % 3 == 1:
            col.update(ids=[f"s{step}-0"], metadatas=[{"step": -1}])
            states[col.version] = _state(col)
        if step % 2:
            col.delete(where={"step": step - 1})
            states[col.version] = _state(col)
    col.upsert(ids=["s7-1", "new"], embeddings=rng.random((2, 4)), metadatas=[{"step": 99}] * 2)
    states[col.version] = _state(col)
    col.wait_for_index()  # index commits change no rows: their versions read like their parents

    q = rng.random(4).astype(np.float32)
    for version, state in states.items():
        old = col.at(version)
        assert old.version == version
        assert _state(old) == state
        assert old.count() == len(state)
        assert old.to_arrow().num_rows == len(state)
        assert old.duckdb().aggregate("count(*)").fetchall()[0][0] == len(state)
        if state:
            k = min(5, len(state))
            assert old.query(query_embeddings=[q], n_results=k)["ids"][0] == _exact_top(state, q, k)
    reopened = lakevec.PersistentClient(root).get_collection("travel", embedding_function=None, version=3)
    assert _state(reopened) == states[3]


def test_old_versions_are_read_only(collection):
    collection.add(ids=["a"], embeddings=[[1.0, 0.0]])
    collection.add(ids=["b"], embeddings=[[0.0, 1.0]])
    old = collection.at(1)
    latest = collection.version
    for write in (
        lambda: old.add(ids=["c"], embeddings=[[1.0, 1.0]]),
        lambda: old.upsert(ids=["a"], embeddings=[[1.0, 1.0]]),
        lambda: old.update(ids=["a"], metadatas=[{"k": 1}]),
        lambda: old.delete(ids=["a"]),
        lambda: old.modify(metadata={"k": 1}),
        lambda: old.restore(0),
    ):
        with pytest.raises(InvalidArgumentError, match="read-only"):
            write()
    assert collection.version == latest and collection.count() == 2 and old.count() == 1
    for bad in (-1, latest + 1, "1", True):
        with pytest.raises(InvalidArgumentError):
            collection.at(bad)
    with pytest.raises(InvalidArgumentError):
        collection.at()


def test_restore_commits_an_old_state(collection):
    collection.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]], metadatas=[{"k": 1}, {"k": 2}])
    v1 = collection.version
    before = _state(collection)
    collection.upsert(ids=["a"], embeddings=[[5.0, 5.0]], metadatas=[{"k": "changed"}])
    collection.delete(ids=["b"])
    collection.add(ids=["c"], embeddings=[[3.0, 3.0]])
    between = collection.version
    after_changes = _state(collection)

    new = collection.restore(v1)
    assert new == between + 1 == collection.version
    assert _state(collection) == before
    assert collection.versions()[-1]["operation"] == "restore"
    assert _state(collection.at(between)) == after_changes  # history is kept
    # writing after a restore works and keeps Chroma's insertion order
    collection.add(ids=["d"], embeddings=[[0.5, 0.5]])
    assert collection.get()["ids"] == ["a", "b", "d"]


def test_versions_timestamps_and_stats(collection):
    t0 = time.time()
    collection.add(ids=["a", "b", "c"], embeddings=np.eye(3)[:, :2] + 0.1)
    time.sleep(0.05)
    t1 = time.time()
    collection.delete(ids=["a"])
    history = collection.versions()
    assert [h["version"] for h in history] == list(range(collection.version + 1))
    assert [h["operation"] for h in history][:3] == ["create", "add", "delete"]
    assert [h["live_rows"] for h in history][:3] == [0, 3, 2]
    assert collection.at(timestamp=t1).count() == 3
    assert collection.at(timestamp=time.time()).count() == 2
    with pytest.raises(NotFoundError):
        collection.at(timestamp=t0 - 3600)
    stats = collection.stats()
    assert stats["rows"] == 3 and stats["live_rows"] == 2 and stats["dead_rows"] == 1
    assert stats["fragments"] == 1 and stats["versions"] >= 3 and stats["bytes"] > 0
    assert stats["dimension"] == 2 and 0.0 <= stats["indexed_fraction"] <= 1.0
