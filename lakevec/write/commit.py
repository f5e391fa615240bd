"""Write a change's files, then create manifest N+1 only if nobody else did.

Files get unique names, so writing them is safe at any time; the manifest is the commit point.
A lost race returns None and the caller re-plans on the winner's version.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakevec.errors import InvalidDimensionException
from lakevec.lake.fragments import FragmentCache
from lakevec.lake.log import VersionLog
from lakevec.lake.manifest import FragmentEntry, Manifest
from lakevec.lake.schema import deletion_bytes, write_parquet
from lakevec.lake.snapshot import Snapshot
from lakevec.lake.storage import Storage
from lakevec.write.fragment import build_table
from lakevec.write.plan import Change

# A batch with more vectors than this is written as several fragments, encoded side by side
# (Parquet encoding is single-threaded per file and dominates a bulk write).
PART_BYTES = 64 << 20
WRITERS = max(1, min(4, os.cpu_count() or 1))
_POOL = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="lakevec-write")


@dataclass
class Written:
    """Files of one attempt; fragments are reused by the next attempt if their tables are equal."""

    table: pa.Table | None = None
    entries: list[FragmentEntry] = dataclasses.field(default_factory=list)
    parts: list[pa.Table] = dataclasses.field(default_factory=list)
    deletes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def paths(self) -> list[str]:
        return [e.path for e in self.entries] + list(self.deletes)


def split(table: pa.Table, dim: int) -> list[pa.Table]:
    """Zero-copy slices of at most about PART_BYTES of vectors each (one for a small batch)."""
    parts = max(1, min(WRITERS, -(-(table.num_rows * dim * 4) // PART_BYTES)))
    size = -(-table.num_rows // parts)
    return [table.slice(start, size) for start in range(0, table.num_rows, size)]


def write_fragment(
    storage: Storage, cache: FragmentCache, part: pa.Table, frag_id: str | None = None
) -> FragmentEntry:
    frag_id = frag_id or uuid.uuid4().hex
    path = f"data/{frag_id}.parquet"
    with storage.create(cache.path(path)) as sink:
        write_parquet(part, sink)
        size = sink.tell()
    seq = part.column("_seq")
    return FragmentEntry(
        id=frag_id,
        path=path,
        rows=part.num_rows,
        live_rows=part.num_rows,
        seq_min=pc.min(seq).as_py(),
        seq_max=pc.max(seq).as_py(),
        bytes=size,
    )


def write_and_commit(
    snap: Snapshot,
    change: Change,
    log: VersionLog,
    cache: FragmentCache,
    prior: Written | None,
) -> tuple[Manifest | None, Written]:
    storage = cache.storage
    base = snap.manifest
    version = base.version + 1
    written = Written()
    fields, fragments = base.fields, list(base.fragments)
    next_seq, dimension = base.next_seq, base.dimension

    if change.batch is not None and len(change.batch):
        batch = change.batch
        if dimension is not None and batch.embeddings.shape[1] != dimension:
            # another writer fixed the dimension after this call was validated
            raise InvalidDimensionException(
                f"Collection expecting embedding with dimension of {dimension}, got {batch.embeddings.shape[1]}"
            )
        table, fields = build_table(batch, fields)
        if prior is not None and prior.table is not None and prior.table.equals(table):
            written.parts, written.entries = prior.parts, prior.entries
        else:
            written.parts = split(table, batch.embeddings.shape[1])
            written.entries = list(
                _POOL.map(lambda part: write_fragment(storage, cache, part), written.parts)
            )
        written.table = table
        next_seq = max(next_seq, int(batch.seq.max()) + 1)
        dimension = dimension or int(batch.embeddings.shape[1])

    if len(change.dead):
        frag_idx, rows = snap.locate(np.asarray(change.dead, dtype=np.int64))
        for i in np.unique(frag_idx):
            entry = fragments[i]
            old = snap.dead[i]
            dead = rows[frag_idx == i]
            if old is not None:
                dead = np.union1d(old, dead)
            # unique per attempt: two writers racing for the same version must never share a name
            relative = f"deletes/{entry.id}-v{version}-{uuid.uuid4().hex[:12]}.arrow"
            storage.write_new(cache.path(relative), deletion_bytes(dead))
            written.deletes[relative] = dead
            fragments[i] = dataclasses.replace(entry, deletes=relative, live_rows=entry.rows - len(dead))
        fragments = [f for f in fragments if f.live_rows > 0]

    fragments.extend(written.entries)
    if len(written.paths()) and storage.local:
        for sub in {p.split("/")[0] for p in written.paths()}:
            storage.sync_dir(cache.path(sub))
    manifest = base.child(
        change.operation,
        fields=fields,
        fragments=tuple(fragments),
        next_seq=next_seq,
        dimension=dimension,
    )
    if not log.try_commit(version, manifest.to_json()):
        return None, written
    return manifest, written


def discard(written: Written, keep: Written | None, cache: FragmentCache) -> None:
    """Remove files of a lost attempt that the next attempt does not reuse."""
    keep_paths = set(keep.paths()) if keep else set()
    for path in written.paths():
        if path not in keep_paths:
            cache.storage.delete(cache.path(path))
