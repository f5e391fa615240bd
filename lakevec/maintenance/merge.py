"""Tiered merging of small unindexed fragments, so many small ``add`` calls do not leave a
collection made of thousands of files.

When ``MERGE_COUNT`` small fragments have accumulated, their live rows are rewritten into one
fragment (rows keep ``_seq``, so ``get`` order is unchanged) and a ``compact`` version replaces
them. Merged fragments grow until they are no longer small, and the indexer then folds them into
an index. The commit is abandoned, not forced, if a merged fragment changed meanwhile (a delete
or an index landed on it): the next round retries. Full compaction of indexed fragments is
its own operation.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakevec.engine import CollectionEngine
from lakevec.lake.manifest import Manifest
from lakevec.lake.snapshot import Snapshot
from lakevec.write.commit import write_fragment

SMALL_ROWS = 8192
MERGE_COUNT = 8


def live_rows(engine: CollectionEngine, snap: Snapshot, i: int) -> tuple[pa.Table, np.ndarray]:
    """Fragment ``i`` of ``snap`` read back without its dead rows, and the row numbers kept."""
    entry = snap.manifest.fragments[i]
    with engine.storage.open_immutable(engine.cache.path(entry.path)) as f:
        table = pq.read_table(f)
    keep = np.ones(entry.rows, dtype=bool)
    if snap.dead[i] is not None:
        keep[snap.dead[i]] = False
    return table.filter(pa.array(keep)), np.flatnonzero(keep)


def merge_small(engine: CollectionEngine, exclude: frozenset[str] = frozenset()) -> bool:
    """Merge the small unindexed fragments if enough have piled up; True if committed.
    ``exclude``: fragment ids a fold in progress is indexing (left to it)."""
    snap = engine.snapshot()
    base = snap.manifest
    small = [
        i
        for i, e in enumerate(base.fragments)
        if e.index is None and e.rows < SMALL_ROWS and e.id not in exclude
    ]
    if len(small) < MERGE_COUNT:
        return False
    parts = [live_rows(engine, snap, i)[0] for i in small]
    merged = pa.concat_tables(parts, promote_options="permissive")
    entry = write_fragment(engine.storage, engine.cache, merged)
    replaced = {base.fragments[i].id: base.fragments[i] for i in small}

    def transform(m: Manifest) -> Manifest | None:
        current = {e.id: e for e in m.fragments}
        if any(current.get(fid) != old for fid, old in replaced.items()):
            return None  # changed since we read it: leave it to the next round
        fragments = [e for e in m.fragments if e.id not in replaced]
        return m.child("compact", fragments=(*fragments, entry))

    engine.cache.put(entry, merged)
    if engine.commit_transform(transform) is None:
        engine.storage.delete(engine.cache.path(entry.path))
        return False
    return True
