"""Staged writes (write/staged.py) without Ray: a commit that loses its race and is planned
again keeps the renamed copy it wrote in the first attempt."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import lakevec
from lakevec.write.staged import commit_staged, new_job, stage, task_seq
from lakevec.write.table_input import Columns


def _batch(start: int, x: pa.Array) -> pa.RecordBatch:
    vectors = np.random.default_rng(start).standard_normal((len(x), 4)).astype(np.float32)
    return pa.record_batch(
        {
            "id": [f"id{i}" for i in range(start, start + len(x))],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 4),
            "x": x,
        }
    )


def test_a_renamed_fragment_survives_a_lost_race(tmp_path):
    collection = lakevec.PersistentClient(str(tmp_path)).create_collection("staged", embedding_function=None)
    engine = collection._engine
    job, seq = new_job(), engine.snapshot().manifest.next_seq
    staged = stage(collection, [_batch(0, pa.array([1, 2]))], Columns(), job, task_seq(seq, 0))
    staged += stage(collection, [_batch(2, pa.array(["a", "b"]))], Columns(), job, task_seq(seq, 1))
    real, lost = engine.log.try_commit, []

    def lose_once(version, data):
        if not lost:
            lost.append(version)
            return False
        return real(version, data)

    engine.log.try_commit = lose_once
    manifest = commit_staged(engine, staged)
    assert lost and manifest is not None
    assert collection.get(ids=["id0", "id3"], include=["metadatas"])["metadatas"] == [{"x": 1}, {"x": "b"}]
    on_disk = {f"data/{n}" for n in engine.storage.listdir(engine.cache.path("data"))}
    assert on_disk == {f.path for f in manifest.fragments}
