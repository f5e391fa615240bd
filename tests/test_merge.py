"""Small fragments are merged in tiers; nothing a reader can see changes."""

from __future__ import annotations

import numpy as np

import lakevec
from lakevec.maintenance.merge import MERGE_COUNT


def test_many_small_adds_are_merged_without_changing_results(root):
    col = lakevec.PersistentClient(root).create_collection("small", embedding_function=None)
    col._engine.on_commit.clear()  # merge only when asked, so the test sees the before state
    rng = np.random.default_rng(0)
    for b in range(3 * MERGE_COUNT):
        col.add(
            ids=[f"b{b}-{i}" for i in range(10)],
            embeddings=rng.standard_normal((10, 4)),
            metadatas=[{"b": b, **({"odd": True} if b % 2 else {"tag": "even"})}] * 10,
            documents=[f"batch {b}"] * 10,
        )
        if b % 3 == 0:
            col.delete(ids=[f"b{b}-0"])
        if b % 4 == 0:
            col.upsert(ids=[f"b{b}-1"], embeddings=[[9, 9, 9, 9]], metadatas=[{"moved": True}])
    before = col.get(include=["metadatas", "embeddings", "documents"])
    query = col.query(query_embeddings=[[1, 0, 0, 0]], n_results=15)
    assert len(col._engine.snapshot().manifest.fragments) > MERGE_COUNT

    col.wait_for_index()
    manifest = col._engine.snapshot().manifest
    assert len(manifest.fragments) < MERGE_COUNT and all(f.index for f in manifest.fragments)
    after = col.get(include=["metadatas", "embeddings", "documents"])
    assert after["ids"] == before["ids"] and after["metadatas"] == before["metadatas"]
    assert after["documents"] == before["documents"]
    np.testing.assert_array_equal(after["embeddings"], before["embeddings"])
    assert col.query(query_embeddings=[[1, 0, 0, 0]], n_results=15)["ids"] == query["ids"]
    assert col.get(where={"odd": True}, include=[])["ids"] == [
        i for i, m in zip(before["ids"], before["metadatas"]) if m.get("odd")
    ]

    reopened = lakevec.PersistentClient(root).get_collection("small", embedding_function=None)
    assert reopened.get(include=["metadatas"])["metadatas"] == before["metadatas"]
