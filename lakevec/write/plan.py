"""What a write changes, worked out against one snapshot: rows to add, rows that die.

A plan is recomputed from scratch when a commit loses the race for its version, so every
operation is applied to the state it actually commits on (serializable, like a rebase).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from lakevec.lake.schema import metadata_dicts, numbers
from lakevec.lake.snapshot import Snapshot
from lakevec.write.fragment import ColumnarMetadata, RowBatch


@dataclass
class Change:
    operation: str
    batch: RowBatch | None = None  # rows of the new fragment
    dead: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # positions
    result: Any = None

    @property
    def empty(self) -> bool:
        return (self.batch is None or len(self.batch) == 0) and len(self.dead) == 0


def _pick(values: Any, index: np.ndarray) -> Any:
    if values is None:
        return [None] * len(index)
    if isinstance(values, (ColumnarMetadata, pa.Array)):
        return values.take(index)
    return [values[i] for i in index]


def plan_add(
    snap: Snapshot,
    ids: list[str] | pa.Array,
    embeddings: np.ndarray,
    documents: list | pa.Array | None,
    uris: list | pa.Array | None,
    metadatas: list | None,
) -> Change:
    """New ids become rows; ids that already exist are skipped, as Chroma does."""
    new = np.flatnonzero(snap.lookup(ids) < 0)
    if len(new) == 0:
        return Change("add")
    if len(new) < len(ids):
        ids, embeddings = _pick(ids, new), embeddings[new]
        documents, uris = _pick(documents, new), _pick(uris, new)
        metadatas = _pick(metadatas, new)
    batch = RowBatch(
        ids=ids,
        embeddings=embeddings,
        documents=documents if documents is not None else pa.nulls(len(ids), pa.string()),
        uris=uris if uris is not None else pa.nulls(len(ids), pa.string()),
        metadatas=metadatas if metadatas is not None else [None] * len(ids),
        seq=snap.manifest.next_seq + np.arange(len(ids), dtype=np.int64),
    )
    return Change("add", batch=batch)


def _merge_metadata(old: dict | None, new: dict | None) -> dict | None:
    if new is None:
        return old
    merged = dict(old or {})
    for key, value in new.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged or None


def plan_upsert(
    snap: Snapshot,
    ids: list[str],
    embeddings: np.ndarray | None,
    documents: list | None,
    uris: list | None,
    metadatas: list | None,
    *,
    update_only: bool,
) -> Change:
    """Existing rows are replaced by merged copies (old row dies, new one keeps its ``_seq``);
    with ``update_only`` missing ids are ignored, otherwise they are inserted."""
    operation = "update" if update_only else "upsert"
    positions = snap.lookup(ids)
    found = np.flatnonzero(positions >= 0)
    new = np.zeros(0, dtype=np.int64) if update_only else np.flatnonzero(positions < 0)
    order = np.concatenate([found, new])
    if len(order) == 0:
        return Change(operation)
    old_pos = positions[found]
    old = snap.take(old_pos)
    n_found = len(found)

    out_docs = _pick(documents, order) if documents is not None else None
    if out_docs is None:
        out_docs = old.column("document").to_pylist() + [None] * len(new)
    elif n_found:
        given = np.array([d is not None for d in out_docs[:n_found]])
        if not given.all():  # a None document in update keeps the old one
            old_docs = old.column("document").to_pylist()
            out_docs[:n_found] = [d if g else o for d, g, o in zip(out_docs, given, old_docs)]
    out_uris = _pick(uris, order) if uris is not None else None
    if out_uris is None:
        out_uris = old.column("uri").to_pylist() + [None] * len(new)

    if embeddings is not None:
        out_emb = embeddings[order]
    else:  # update without embeddings: found rows only
        out_emb = snap.embeddings(old_pos)

    old_meta = metadata_dicts(old, snap.manifest.fields)
    given_meta = _pick(metadatas, order)
    out_meta = [_merge_metadata(o, m) for o, m in zip(old_meta, given_meta[:n_found])]
    out_meta += [_merge_metadata(None, m) for m in given_meta[n_found:]]

    seq = np.concatenate(
        [
            numbers(old.column("_seq")),
            snap.manifest.next_seq + np.arange(len(new), dtype=np.int64),
        ]
    )
    batch = RowBatch(
        ids=[ids[i] for i in order],
        embeddings=out_emb,
        documents=out_docs,
        uris=out_uris,
        metadatas=out_meta,
        seq=seq,
    )
    return Change(operation, batch=batch, dead=old_pos)


def plan_delete(snap: Snapshot, positions: np.ndarray) -> Change:
    return Change("delete", dead=positions, result=None)
