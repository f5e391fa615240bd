"""Indexes for a large unindexed tail, built as independent tiers and committed together.

The indexer folds a tail into one index at a time. A bulk load that many processes index at
once (:func:`lakevec.ray.build_indexes`) instead cuts the tail into tiers: consecutive
fragments, each tier one new index whose keys start where the previous tier's end, so every
index's keys stay one range above the older ones' (one native call still searches them all).
Each tier is built on its own from one pinned version; one commit then points every fragment
at its tier's index, and a fragment that a merge or compaction replaced meanwhile stays
unindexed for the indexer to fold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lakevec.engine import CollectionEngine
from lakevec.lake.manifest import Manifest
from lakevec.lake.snapshot import Snapshot
from lakevec.maintenance.index_files import ADD_CHUNK, key_end, save_index, saved_encoding, write_postings
from lakevec.write.index import (
    Encoding,
    gather_tail,
    index_encoding,
    index_rows,
    insertion_order,
    new_index,
    striped,
)


@dataclass(frozen=True)
class Tier:
    """One index to build: fragments (ids, in manifest order) and the key of the first row."""

    version: int
    fragments: tuple[str, ...]
    key: int
    encoding: Encoding  # how rows enter the index (every tier's alike)
    rows: int


@dataclass(frozen=True)
class BuiltTier:
    path: str
    bases: dict[str, int]  # fragment id -> its row 0's key
    texts: dict[str, str]  # fragment id -> its postings file
    encoding: Encoding
    route: str | None = None  # the index's route file, if it has one


def plan_tiers(engine: CollectionEngine, rows_per_index: int) -> list[Tier]:
    """Tiers of at most ``rows_per_index`` rows (one fragment at least) covering the unindexed tail."""
    snap = engine.snapshot(fresh=True)
    manifest = snap.manifest
    tail = [i for i, e in enumerate(manifest.fragments) if e.index is None and e.live_rows > 0]
    if not tail or manifest.dimension is None:
        return []
    encoding = saved_encoding(engine, index_encoding(snap, tail))
    key = max((key_end(manifest, p) for p in index_rows(manifest)), default=0)
    tiers: list[Tier] = []
    ids: list[str] = []
    first, rows = key, 0
    for i in tail:
        entry = manifest.fragments[i]
        if ids and rows + entry.rows > rows_per_index:
            tiers.append(Tier(manifest.version, tuple(ids), first, encoding, rows))
            ids, first, rows = [], first + rows, 0
        ids.append(entry.id)
        rows += entry.rows
    tiers.append(Tier(manifest.version, tuple(ids), first, encoding, rows))
    return tiers


def build_tier(engine: CollectionEngine, tier: Tier, threads: int = 0) -> BuiltTier:
    """Build and save one tier's index (and its fragments' postings), committing nothing. It
    reads the tier's fragments alone, from the version the tier was planned on."""
    manifest = Manifest.from_json(engine.log.read(tier.version))
    members = set(tier.fragments)
    manifest = dataclasses.replace(
        manifest, fragments=tuple(e for e in manifest.fragments if e.id in members)
    )
    snap = Snapshot(manifest, engine.cache)
    hnsw = manifest.config["hnsw"]
    index = new_index(manifest.dimension or 0, hnsw, tier.encoding)
    where = {e.id: i for i, e in enumerate(manifest.fragments)}
    positions = [where[f] for f in tier.fragments]
    keys, vectors, bases = gather_tail(snap, positions, tier.key, tier.encoding)
    order = insertion_order(vectors)
    for a in range(0, len(order), ADD_CHUNK):
        chunk = striped(order[a : a + ADD_CHUNK], threads)
        index.add(keys[chunk], vectors[chunk], threads=threads)
    del vectors
    path, route = save_index(engine, index)
    return BuiltTier(path, bases, write_postings(engine, snap, positions), tier.encoding, route)


def commit_tiers(engine: CollectionEngine, built: list[BuiltTier]) -> Manifest | None:
    """Point every fragment at its tier's index in one version (None: nothing left to point
    at, and the tiers' files are deleted)."""
    by_fragment = {f: t for t in built for f in t.bases}

    def point(m: Manifest) -> Manifest | None:
        fragments, folded = [], False
        for e in m.fragments:
            tier = by_fragment.get(e.id)
            if tier is not None and e.index is None:
                e = dataclasses.replace(
                    e,
                    index=tier.path,
                    index_base=tier.bases[e.id],
                    index_scale=tier.encoding.scale,
                    index_codec=tier.encoding.codec,
                    index_route=tier.route,
                    index_projection=tier.encoding.projection,
                )
                if e.id in tier.texts and e.text is None:
                    e = dataclasses.replace(e, text=tier.texts[e.id])
                folded = True
            fragments.append(e)
        return m.child("index", fragments=tuple(fragments)) if folded else None

    committed = engine.commit_transform(point)
    used = committed.files() if committed is not None else set()
    for tier in built:
        for path in [tier.path, *([tier.route] if tier.route else []), *tier.texts.values()]:
            if path not in used:
                engine.storage.delete(engine.cache.path(path))
    return committed
