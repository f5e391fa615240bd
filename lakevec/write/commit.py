"""Write a change's files, then create manifest N+1 only if nobody else did.

Files get unique names, so writing them is safe at any time; the manifest is the commit point.
A lost race returns None and the caller re-plans on the winner's version.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lakevec.errors import InvalidDimensionException
from lakevec.lake.log import VersionLog
from lakevec.lake.manifest import FragmentEntry, Manifest
from lakevec.read.snapshot import FragmentCache, Snapshot
from lakevec.write.fragment import build_table, deletion_bytes, parquet_bytes
from lakevec.write.plan import Change


@dataclass
class Written:
    """Files of one attempt; a fragment is reused by the next attempt if its table is equal."""

    table: pa.Table | None = None
    entry: FragmentEntry | None = None
    deletes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def paths(self) -> list[str]:
        return ([self.entry.path] if self.entry else []) + list(self.deletes)


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
            entry = prior.entry
        else:
            frag_id = uuid.uuid4().hex
            data = parquet_bytes(table)
            entry = FragmentEntry(
                id=frag_id,
                path=f"data/{frag_id}.parquet",
                rows=len(batch),
                live_rows=len(batch),
                seq_min=int(batch.seq.min()),
                seq_max=int(batch.seq.max()),
                bytes=data.size,
            )
            storage.write_new(cache.path(entry.path), data)
        written.table, written.entry = table, entry
        next_seq = max(next_seq, entry.seq_max + 1)
        dimension = dimension or int(batch.embeddings.shape[1])

    if len(change.dead):
        frag_idx, rows = snap.locate(np.asarray(change.dead, dtype=np.int64))
        for i in np.unique(frag_idx):
            entry = fragments[i]
            old = snap.dead[i]
            dead = rows[frag_idx == i]
            if old is not None:
                dead = np.union1d(old, dead)
            relative = f"deletes/{entry.id}-v{version}.arrow"
            storage.write_new(cache.path(relative), deletion_bytes(dead))
            written.deletes[relative] = dead
            fragments[i] = dataclasses.replace(entry, deletes=relative, live_rows=entry.rows - len(dead))
        fragments = [f for f in fragments if f.live_rows > 0]

    if written.entry is not None:
        fragments.append(written.entry)
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
