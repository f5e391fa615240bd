"""A collection version as a Ray dataset: one read task per fragment, deletes and filter applied."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import ray
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from lakevec.errors import InvalidArgumentError
from lakevec.interop import TABLE_INCLUDE, snapshot_table
from lakevec.lake.manifest import Manifest
from lakevec.lake.snapshot import Snapshot
from lakevec.ray.target import Target
from lakevec.read.rows import select
from lakevec.validate import validate_filters


def _fragment_table(
    target: Target, manifest: Manifest, fragment: int, where, where_document, include
) -> pa.Table:
    """The live rows of one fragment that pass the filters, in insertion order, with the
    columns ``to_arrow`` gives (every metadata field of the version, so blocks share a schema)."""
    engine = target.collection()._engine
    one = dataclasses.replace(manifest, fragments=(manifest.fragments[fragment],))
    snap = Snapshot(one, engine.cache)
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        positions = select(snap, con, where=where, where_document=where_document)
    finally:
        con.close()
    return snapshot_table(snap, np.asarray(positions, dtype=np.int64), include)


def _blocks(*args: Any) -> list[pa.Table]:
    return [_fragment_table(*args)]


class CollectionSource(Datasource):
    def __init__(self, target: Target, manifest: Manifest, where, where_document, include) -> None:
        self.target, self.manifest = target, manifest
        self.where, self.where_document, self.include = where, where_document, include

    def estimate_inmemory_data_size(self) -> int | None:
        return sum(e.bytes for e in self.manifest.fragments)

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[ReadTask]:
        tasks = []
        for i, entry in enumerate(self.manifest.fragments):
            if entry.live_rows == 0:
                continue
            args = (self.target, self.manifest, i, self.where, self.where_document, self.include)
            meta = BlockMetadata(
                num_rows=None if (self.where or self.where_document) else entry.live_rows,
                size_bytes=entry.bytes,
                exec_stats=None,
                input_files=(entry.path,),
            )
            tasks.append(ReadTask(functools.partial(_blocks, *args), meta))
        return tasks


def read(
    root: str,
    name: str,
    *,
    version: int | None = None,
    where: dict | None = None,
    where_document: dict | None = None,
    include: list[str] | None = None,
    storage_options: dict[str, Any] | None = None,
    tenant: str | None = None,
    database: str | None = None,
) -> Any:
    """The live rows of a collection version (the latest by default) as a ``ray.data.Dataset``
    with ``to_arrow``'s columns: ``id``, ``document``, ``uri``, one per metadata field,
    ``embedding``. ``where`` / ``where_document`` are Chroma filters, applied in the read tasks."""
    target = Target(root, name, storage_options=dict(storage_options or {}))
    if tenant is not None or database is not None:
        target = dataclasses.replace(
            target, tenant=tenant or target.tenant, database=database or target.database
        )
    collection = target.collection()
    if version is not None:
        collection = collection.at(version)
    validate_filters(None, where, where_document, None)
    include = list(TABLE_INCLUDE if include is None else include)
    bad = [i for i in include if i not in TABLE_INCLUDE]
    if bad:
        raise InvalidArgumentError(f"include must be among {TABLE_INCLUDE}, got {bad}")
    manifest = collection._engine.snapshot().manifest
    source = CollectionSource(target, manifest, where or None, where_document or None, include)
    return ray.data.read_datasource(source)
