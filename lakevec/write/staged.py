"""Fragments written now and committed later, all in one version.

The tasks of a distributed write (:mod:`lakevec.ray`) each stage fragments (validated rows
written under unique names, not yet in any manifest) and return what they wrote; one commit
then adds every staged fragment or none. Until that commit no reader sees a staged row, so a
task that dies and is retried leaves only unlisted files, which :func:`sweep` deletes.

Rows of an add keep Chroma's rules at the commit: an id that the collection already holds, or
that an earlier staged row (lower ``_seq``) holds, is skipped, as ``add_table`` skips an id a
previous batch added. Duplicate ids inside one task's batch raise, as ``add`` does.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lakevec.errors import InvalidDimensionException
from lakevec.lake.manifest import FragmentEntry, Manifest, MetadataField
from lakevec.lake.schema import deletion_bytes, numbers, write_parquet
from lakevec.lake.snapshot import Snapshot
from lakevec.write.commit import write_fragment
from lakevec.write.fragment import RowBatch, allocate_fields, build_table
from lakevec.write.table_input import Columns, prepare_batch

#: a staged write's rows take ``_seq`` from this far above the collection's ``next_seq`` on (so
#: rows that other writers commit meanwhile never share a number with them), task ``t`` from
#: ``t * TASK_SEQ_SPAN`` above that; ``_seq`` only orders rows, so the gaps cost nothing
SEQ_GAP = 1 << 40
TASK_SEQ_SPAN = 1 << 32


@dataclass(frozen=True)
class Staged:
    """One staged fragment: its entry, and the names its file gives its metadata fields."""

    entry: FragmentEntry
    fields: tuple[MetadataField, ...]
    dimension: int


def new_job() -> str:
    """A staged write's name: the prefix of its fragment ids (and so of its files)."""
    return f"job{uuid.uuid4().hex[:12]}"


def task_seq(next_seq: int, task: int) -> int:
    """The first ``_seq`` of task ``task`` of a staged write that started at ``next_seq``."""
    return next_seq + SEQ_GAP + task * TASK_SEQ_SPAN


def stage(
    collection: Any, batches: Iterable[pa.RecordBatch], columns: Columns, job: str, seq: int
) -> list[Staged]:
    """Validate each batch as ``add_table`` does (``collection._prepare``: ids, metadata,
    dimension, embedding documents that have no vectors) and write it as one fragment."""
    engine = collection._engine
    fields = engine.snapshot().manifest.fields
    out = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        ids, embeddings, documents, uris, metadatas = prepare_batch(
            collection._prepare, batch, "add", columns
        )
        n = len(ids)
        rows = RowBatch(
            ids=ids,
            embeddings=embeddings,
            documents=documents if documents is not None else pa.nulls(n, pa.string()),
            uris=uris if uris is not None else pa.nulls(n, pa.string()),
            metadatas=metadatas if metadatas is not None else [None] * n,
            seq=seq + np.arange(n, dtype=np.int64),
        )
        table, table_fields = build_table(rows, fields)
        entry = write_fragment(engine.storage, engine.cache, table, f"{job}-{uuid.uuid4().hex}")
        named = set(table.schema.field("metadata").type.names) if "metadata" in table.column_names else set()
        out.append(Staged(entry, tuple(f for f in table_fields if f.name in named), embeddings.shape[1]))
        seq += n
    return out


def commit_staged(engine: Any, staged: list[Staged], operation: str = "add") -> Manifest | None:
    """Commit every staged fragment in one version, or none (then their files are deleted).
    Rebased on whatever other writers committed meanwhile, like every lakevec write."""
    staged = sorted(staged, key=lambda s: s.entry.seq_min)
    attempt_files: list[str] = []
    try:
        manifest = _commit(engine, staged, operation, attempt_files) if staged else None
    except BaseException:
        for path in [s.entry.path for s in staged] + attempt_files:
            engine.storage.delete(engine.cache.path(path))
        raise
    listed = manifest.files() if manifest is not None else set()
    for path in [s.entry.path for s in staged] + attempt_files:
        if path not in listed:  # dropped (every row skipped) or renamed
            engine.storage.delete(engine.cache.path(path))
    return manifest


def _commit(engine: Any, staged: list[Staged], operation: str, attempt_files: list[str]) -> Manifest | None:
    dimensions = {s.dimension for s in staged}
    if len(dimensions) > 1:
        raise InvalidDimensionException(f"staged rows have different dimensions: {sorted(dimensions)}")
    (dimension,) = dimensions
    storage, cache = engine.storage, engine.cache
    ids = [_read(engine, s.entry.path, ["id"]).column("id") for s in staged]
    starts = np.cumsum([0] + [len(c) for c in ids])
    all_ids = pa.chunked_array([c for chunked in ids for c in chunked.chunks], pa.string()).combine_chunks()
    repeated = _later_duplicates(all_ids)
    renamed: dict[tuple[str, tuple[MetadataField, ...]], FragmentEntry] = {}

    def plan(snap: Snapshot) -> Manifest | None:
        for path in attempt_files:  # deletion files of a lost attempt (renamed copies are reused)
            storage.delete(cache.path(path))
        attempt_files.clear()
        base = snap.manifest
        if base.dimension is not None and base.dimension != dimension:
            raise InvalidDimensionException(
                f"Collection expecting embedding with dimension of {base.dimension}, got {dimension}"
            )
        fields = allocate_fields(base.fields, {(f.key, f.kind) for s in staged for f in s.fields})
        final = {(f.key, f.kind): f for f in fields}
        skipped = repeated | (snap.lookup(all_ids) >= 0)
        version = base.version + 1
        fragments = list(base.fragments)
        for i, s in enumerate(staged):
            dead = np.flatnonzero(skipped[starts[i] : starts[i + 1]])
            if len(dead) == s.entry.rows:
                continue
            entry = s.entry
            names = tuple(final[(f.key, f.kind)] for f in s.fields)
            if names != s.fields:  # a field another task or writer named first: rename in the file
                key = (entry.id, names)
                if key not in renamed:
                    renamed[key] = _renamed(engine, entry, s.fields, names)
                entry = renamed[key]
            if len(dead):
                path = f"deletes/{entry.id}-v{version}-{uuid.uuid4().hex[:12]}.arrow"
                storage.write_new(cache.path(path), deletion_bytes(dead))
                attempt_files.append(path)
                entry = dataclasses.replace(entry, deletes=path, live_rows=entry.rows - len(dead))
            fragments.append(entry)
        if storage.local:  # the staged names, written by other processes, are durable first
            for sub in ("data", "deletes") if attempt_files else ("data",):
                storage.sync_dir(cache.path(sub))
        next_seq = max(base.next_seq, max(s.entry.seq_max for s in staged) + 1)
        return base.child(
            operation, fields=fields, fragments=tuple(fragments), next_seq=next_seq, dimension=dimension
        )

    try:
        return engine.commit_snapshot(plan)
    finally:  # the caller deletes those the committed version does not list
        attempt_files.extend(e.path for e in renamed.values())


def _read(engine: Any, relative: str, columns: list[str] | None = None) -> pa.Table:
    with engine.storage.open(engine.cache.path(relative)) as f:
        return pq.read_table(f, columns=columns)


def _later_duplicates(ids: pa.Array) -> np.ndarray:
    """True for each id an earlier row of ``ids`` already has."""
    positions = pa.array(np.arange(len(ids), dtype=np.int64))
    first = pa.table({"id": ids, "pos": positions}).group_by("id").aggregate([("pos", "min")])
    repeated = np.ones(len(ids), dtype=bool)
    repeated[numbers(first.column("pos_min"))] = False
    return repeated


def _renamed(
    engine: Any, entry: FragmentEntry, old: tuple[MetadataField, ...], new: tuple[MetadataField, ...]
) -> FragmentEntry:
    """A copy of a staged fragment whose metadata fields take the collection's names."""
    storage, cache = engine.storage, engine.cache
    table = _read(engine, entry.path)
    metadata = table.column("metadata").combine_chunks()
    by_name = {f.name: n.name for f, n in zip(old, new)}
    children = [metadata.field(i) for i in range(metadata.type.num_fields)]
    names = [
        by_name.get(metadata.type.field(i).name, metadata.type.field(i).name) for i in range(len(children))
    ]
    struct = pa.StructArray.from_arrays(children, names=names, mask=metadata.is_null())
    table = table.set_column(table.column_names.index("metadata"), "metadata", struct)
    frag_id = f"{entry.id.split('-', 1)[0]}-{uuid.uuid4().hex}"
    path = f"data/{frag_id}.parquet"
    with storage.create(cache.path(path)) as sink:
        write_parquet(table, sink)
        size = sink.tell()
    return dataclasses.replace(entry, id=frag_id, path=path, bytes=size)


def sweep(engine: Any, job: str, keep: set[str]) -> int:
    """Delete the files a staged write left that ``keep`` (a committed manifest's files) does
    not list: those of retried tasks' first attempts, or all of them after a failure."""
    removed = 0
    for sub in ("data", "deletes"):
        for name in engine.storage.listdir(engine.cache.path(sub)):
            if name.startswith(f"{job}-") and f"{sub}/{name}" not in keep:
                engine.storage.delete(engine.cache.path(f"{sub}/{name}"))
                removed += 1
    return removed
