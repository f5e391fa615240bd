"""The process the crash tests kill with SIGKILL, and the plain-Python model they check against.

    python -m tests.crash_writer write ROOT SEED START   # apply operations START, START+1, ...
    python -m tests.crash_writer dump ROOT               # print the collection as JSON, then vacuum

``write`` prints ``ok <i>`` (flushed) after operation ``i`` returned, so the parent knows every
operation before the last ``ok`` committed; the one running at the kill may or may not have.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import numpy as np

N_IDS = 300
DIM = 8
KINDS = ["add", "add", "upsert", "update", "delete", "compact"]


def operation(seed: int, i: int) -> tuple[str, list[str], np.ndarray, list[dict]]:
    """Operation ``i`` of the sequence ``seed``: the same in the writer and in the model."""
    rng = np.random.default_rng([seed, i])
    kind = KINDS[int(rng.integers(len(KINDS)))]
    size = int(rng.integers(1, 80 if kind == "add" else 30))
    ids = [f"r{j}" for j in sorted(rng.choice(N_IDS, size=size, replace=False))]
    emb = rng.standard_normal((size, DIM)).astype(np.float32)
    metas = [{"op": i, "k": k} for k in range(size)]
    return kind, ids, emb, metas


def apply(col, op) -> None:
    kind, ids, emb, metas = op
    if kind == "add":
        col.add(ids=ids, embeddings=emb, metadatas=metas)
    elif kind == "upsert":
        col.upsert(ids=ids, embeddings=emb, metadatas=metas)
    elif kind == "update":
        col.update(ids=ids, embeddings=emb, metadatas=metas)
    elif kind == "delete":
        col.delete(ids=ids)
    else:
        col.compact(target_rows=200)


def model_after(seed: int, count: int) -> dict[str, tuple[list[float], dict]]:
    """id -> (embedding, metadata) after the first ``count`` operations."""
    rows: dict[str, tuple[list[float], dict]] = {}
    for i in range(count):
        kind, ids, emb, metas = operation(seed, i)
        for id_, e, m in zip(ids, emb.tolist(), metas):
            if kind == "add" and id_ not in rows:
                rows[id_] = (e, m)
            elif kind == "upsert" or (kind == "update" and id_ in rows):
                rows[id_] = (e, {**rows[id_][1], **m} if id_ in rows else m)
            elif kind == "delete":
                rows.pop(id_, None)
    return rows


def _collection(root: str):
    import lakevec

    client = lakevec.PersistentClient(root)
    return client.get_or_create_collection("crash", embedding_function=None)


def write(root: str, seed: int, start: int) -> None:
    col = _collection(root)
    i = start
    while True:
        apply(col, operation(seed, i))
        print(f"ok {i}", flush=True)
        i += 1


def dump(root: str) -> None:
    """The state as JSON, then a vacuum and the files it left that no version references."""
    col = _collection(root)
    got = col.get(include=["embeddings", "metadatas"])
    state = {
        i: [e, m] for i, e, m in zip(got["ids"], np.asarray(got["embeddings"]).tolist(), got["metadatas"])
    }
    col.vacuum(older_than=timedelta(0), keep_versions=1)
    engine = col._engine
    manifest = engine.snapshot(fresh=True).manifest
    referenced = {e.path for e in manifest.fragments}
    referenced |= {e.index for e in manifest.fragments if e.index}
    referenced |= {e.deletes for e in manifest.fragments if e.deletes}
    files = set()
    for sub in ("data", "index", "deletes"):
        for name, _, _ in engine.storage.list_files(engine.cache.path(sub)):
            files.add(f"{sub}/{name}")
    print(json.dumps({"state": state, "unreferenced": sorted(files - referenced)}))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        dump(sys.argv[2])
