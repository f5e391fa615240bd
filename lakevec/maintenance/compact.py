"""Compaction: rewrite fragments that hold dead rows (over 10 %) or are small and unindexed into
large fragments of live rows, then index them; indexes mostly made of dead keys are rebuilt.

The merged rows keep their ``_seq`` (``get`` order is unchanged). The commit rebases over writes
that landed meanwhile: rows deleted or updated after they were read are marked dead in the new
fragments (a deletion file), so nothing deleted comes back and nothing written is lost. If a
fragment it read was replaced meanwhile (another compaction or merge), it starts over.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import numpy as np
import pyarrow as pa

from lakevec.engine import CollectionEngine
from lakevec.lake.manifest import Manifest
from lakevec.lake.schema import deletion_bytes
from lakevec.maintenance.indexer import GROUP_MAX_ROWS, Indexer, stale_indexes
from lakevec.maintenance.merge import live_rows
from lakevec.write.commit import write_fragment
from lakevec.write.embed import progress_bar
from lakevec.write.index import index_rows

TARGET_ROWS = 1_000_000  # rows per compacted fragment
DEAD_FRACTION = 0.1  # rewrite a fragment once more than this fraction of its rows is dead
STALE_INDEX = 0.3  # rebuild an index once this fraction of its keys no longer points at a live row
ATTEMPTS = 5


def compact(indexer: Indexer, target_rows: int = TARGET_ROWS) -> dict[str, Any]:
    """Compact the indexer's collection; no background fold or merge runs meanwhile."""
    engine = indexer.engine
    if engine.pinned_version is not None:
        raise engine.read_only_error()
    with indexer.paused():
        report = {"fragments_before": 0, "fragments_after": 0, "rows_dropped": 0, "indexes_rebuilt": 0}
        for _ in range(ATTEMPTS):
            outcome = _compact_once(engine, target_rows)
            if outcome is not None:
                report.update(outcome)
                break
        report["indexes_rebuilt"] = _drop_stale_indexes(indexer)
        report["indexes_merged"] = _merge_indexes(indexer)
        indexer.wait()
        report["fragments_after"] = len(engine.snapshot().manifest.fragments)
        return report


def _compact_once(engine: CollectionEngine, target_rows: int) -> dict[str, Any] | None:
    snap = engine.snapshot(fresh=True)
    base = snap.manifest
    # dead rows are worth a rewrite; so are small unindexed fragments. A small fragment that is
    # already indexed stays: queries cost per index, not per fragment, and rewriting it would
    # mean indexing its rows again
    chosen = [
        i
        for i, e in enumerate(base.fragments)
        if (e.rows - e.live_rows) > DEAD_FRACTION * e.rows or (e.index is None and e.rows < target_rows // 4)
    ]
    result = {"fragments_before": len(base.fragments), "rows_dropped": 0}
    if not chosen or (
        len(chosen) == 1 and base.fragments[chosen[0]].live_rows == base.fragments[chosen[0]].rows
    ):
        return result
    tables, kept_rows = [], []
    bar = progress_bar(sum(base.fragments[i].rows for i in chosen), "compact: read", "row")
    for i in chosen:
        entry = base.fragments[i]
        if bar is not None:
            bar.update(entry.rows)
        table, kept = live_rows(engine, snap, i)
        tables.append(table)
        kept_rows.append(kept)
        result["rows_dropped"] += entry.rows - entry.live_rows
    if bar is not None:
        bar.close()
    merged = pa.concat_tables(tables, promote_options="permissive")
    pieces = [merged.slice(s, target_rows) for s in range(0, merged.num_rows, target_rows)]
    entries = [write_fragment(engine.storage, engine.cache, p) for p in pieces if p.num_rows]
    # where each kept (fragment, row) now lives: merged row number, then piece and row in it
    starts = np.cumsum([0] + [len(k) for k in kept_rows])
    replaced = {
        base.fragments[i].id: (base.fragments[i], kept_rows[n], starts[n]) for n, i in enumerate(chosen)
    }

    def transform(m: Manifest) -> Manifest | None:
        current = {e.id: e for e in m.fragments}
        newly_dead = []
        for frag_id, (old, kept, start) in replaced.items():
            now = current.get(frag_id)
            if now is None or now.rows != old.rows:
                return None  # replaced by another merge: start over
            if now.deletes != old.deletes:
                dead = engine.cache.dead_rows(now)
                lost = np.flatnonzero(np.isin(kept, dead))
                newly_dead.append(start + lost)
        dead_merged = np.concatenate(newly_dead) if newly_dead else np.zeros(0, dtype=np.int64)
        new_entries = []
        for n, entry in enumerate(entries):
            lo = n * target_rows
            rows = dead_merged[(dead_merged >= lo) & (dead_merged < lo + entry.rows)] - lo
            if len(rows):
                relative = f"deletes/{entry.id}-v{m.version + 1}-{uuid.uuid4().hex[:8]}.arrow"
                engine.storage.write_new(engine.cache.path(relative), deletion_bytes(rows))
                entry = dataclasses.replace(entry, deletes=relative, live_rows=entry.rows - len(rows))
            if entry.live_rows:
                new_entries.append(entry)
        keep = [e for e in m.fragments if e.id not in replaced]
        return m.child("compact", fragments=tuple(keep + new_entries))

    if engine.commit_transform(transform) is None:
        for entry in entries:
            engine.storage.delete(engine.cache.path(entry.path))
        return None
    return result


def _drop_stale_indexes(indexer: Indexer) -> int:
    """Detach fragments from indexes whose keys are mostly dead, so the indexer builds fresh
    ones (rows stay searchable exactly meanwhile). Returns how many indexes were dropped."""
    m = indexer.engine.snapshot(fresh=True).manifest
    stale = stale_indexes(indexer.engine, m, STALE_INDEX)
    return _detach(indexer, stale) if stale else 0


def _detach(indexer: Indexer, indexes: set[str]) -> int:
    """Commit the fragments of ``indexes`` as unindexed, for the indexer to fold again."""

    def transform(current: Manifest) -> Manifest:
        fragments = [
            dataclasses.replace(
                e,
                index=None,
                index_base=0,
                index_scale=None,
                index_codec=None,
                index_route=None,
                index_projection=None,
            )
            if e.index in indexes
            else e
            for e in current.fragments
        ]
        return current.child("compact", fragments=tuple(fragments))

    indexer.engine.commit_transform(transform)
    indexer.forget_head()
    return len(indexes)


def _merge_indexes(indexer: Indexer) -> int:
    """Detach the fragments of the smaller indexes (those that fit beside the largest within
    GROUP_MAX_ROWS), so the inline fold that follows adds their rows to the largest index:
    the size tiers that ingest leaves behind become one index. Returns how many were merged."""
    sizes = index_rows(indexer.engine.snapshot(fresh=True).manifest)
    if len(sizes) < 2:
        return 0
    order = sorted(sizes, key=lambda p: sizes[p], reverse=True)
    room = GROUP_MAX_ROWS - sizes[order[0]]
    merged = set()
    for path in order[1:]:
        if sizes[path] <= room:
            merged.add(path)
            room -= sizes[path]
    return _detach(indexer, merged) if merged else 0
