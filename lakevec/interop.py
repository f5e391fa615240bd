"""Collections and results as Arrow, Polars, pandas and DuckDB tables.

Metadata keys become typed columns (one per key and kind: the first kind a key was seen with
keeps the key's name, others are ``key::kind``), in insertion order; deleted rows never appear.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lakevec.engine import CollectionEngine
from lakevec.extras import require
from lakevec.lake.schema import META_PREFIX
from lakevec.lake.snapshot import Snapshot
from lakevec.read.filter import quote
from lakevec.read.rows import select
from lakevec.write.fragment import metadata_columns

if TYPE_CHECKING:
    import duckdb
    import pandas
    import polars


TABLE_INCLUDE = ("documents", "uris", "metadatas", "embeddings")


def snapshot_table(snap: Snapshot, positions: np.ndarray, include: tuple[str, ...] | list[str]) -> pa.Table:
    rows = snap.take(positions, None)
    columns: dict[str, Any] = {"id": rows.column("id")}
    if "documents" in include:
        columns["document"] = rows.column("document")
    if "uris" in include:
        columns["uri"] = rows.column("uri")
    if "metadatas" in include:
        for f in snap.manifest.fields:
            columns[f.name] = rows.column(META_PREFIX + f.name)
    if "embeddings" in include:
        dim = snap.manifest.dimension
        if dim is None:  # nothing written yet: the dimension is not known
            columns["embedding"] = pa.array([], pa.list_(pa.float32()))
        else:
            flat = pa.array(snap.embeddings(positions).reshape(-1), type=pa.float32())
            columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.table(columns)


def collection_table(
    engine: CollectionEngine,
    *,
    where: dict | None = None,
    where_document: dict | None = None,
    where_sql: str | None = None,
    include: tuple[str, ...] | list[str] = TABLE_INCLUDE,
) -> pa.Table:
    snap = engine.snapshot()
    positions = select(snap, engine._con, where=where, where_document=where_document, where_sql=where_sql)
    return snapshot_table(snap, positions, include)


class QueryResult(dict):
    """Chroma's ``QueryResult`` dict, plus long-format tables: one row per (query, rank)."""

    def to_arrow(self) -> pa.Table:
        ids = self["ids"]
        query_index = [q for q, row in enumerate(ids) for _ in row]
        rank = [r for row in ids for r in range(len(row))]
        columns: dict[str, Any] = {
            "query_index": pa.array(query_index, pa.int32()),
            "rank": pa.array(rank, pa.int32()),
            "id": pa.array([i for row in ids for i in row], pa.string()),
        }
        if self.get("distances") is not None:
            columns["distance"] = pa.array([d for row in self["distances"] for d in row], pa.float64())
        if self.get("documents") is not None:
            columns["document"] = pa.array([d for row in self["documents"] for d in row], pa.string())
        if self.get("uris") is not None:
            columns["uri"] = pa.array([d for row in self["uris"] for d in row], pa.string())
        if self.get("metadatas") is not None:
            # typed columns as the collection stores them: a key with two kinds gets two columns
            fields, metadata = metadata_columns([m for row in self["metadatas"] for m in row], ())
            columns.update({f.name: metadata[f.name] for f in fields})
        return pa.table(columns)

    def to_polars(self) -> polars.DataFrame:
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def to_pandas(self) -> pandas.DataFrame:
        require("pandas", "to_pandas()")
        return self.to_arrow().to_pandas()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_relation(engine: CollectionEngine, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """The live rows as a DuckDB relation. On a local root it reads the Parquet fragments
    directly (projection and filters are pushed into the scan) and anti-joins the deletion
    files; elsewhere it scans the rows as Arrow."""
    snap = engine.snapshot()
    tag = uuid.uuid4().hex
    if not engine.storage.local or not snap.manifest.fragments:
        con.register(f"lakevec_rows_{tag}", snapshot_table(snap, snap.live_in_order, TABLE_INCLUDE))
        return con.table(f"lakevec_rows_{tag}")
    files = [engine.cache.path(e.path) for e in snap.manifest.fragments]
    dead_files, dead_rows = [], []
    for path, dead in zip(files, snap.dead):
        if dead is not None:
            dead_files += [path] * len(dead)
            dead_rows.append(dead.astype(np.int64))
    rows = np.concatenate(dead_rows) if dead_rows else np.zeros(0, dtype=np.int64)
    con.register(f"lakevec_deleted_{tag}", pa.table({"file": pa.array(dead_files, pa.string()), "row": rows}))
    columns = ["t.id", "t.document", "t.uri"]
    columns += [f"t.metadata.{quote(f.name)} AS {quote(f.name)}" for f in snap.manifest.fields]
    columns.append("t.embedding")
    source = (
        f"read_parquet([{', '.join(_literal(f) for f in files)}], union_by_name=true, "
        "file_row_number=true, filename=true)"
    )
    return con.sql(
        f"SELECT {', '.join(columns)} FROM {source} t "
        f"ANTI JOIN lakevec_deleted_{tag} d ON t.filename = d.file AND t.file_row_number = d.row "
        "ORDER BY t._seq"
    )


def sql_connection(engines: dict[str, CollectionEngine]) -> duckdb.DuckDBPyConnection:
    """A private DuckDB connection where each collection's live rows are a view of its name
    (quote names with ``-`` or ``.`` in SQL: ``SELECT * FROM "my-docs"``)."""
    import duckdb

    con = duckdb.connect()
    for name, engine in engines.items():
        duckdb_relation(engine, con).create_view(name)
    return con


def import_table(
    engine: CollectionEngine,
    prepare_rows: Callable[..., tuple],
    data: Any,
    op: str,
    *,
    ids: str = "id",
    documents: str | None = "document",
    embeddings: str | None = "embedding",
    uris: str | None = None,
    metadatas: list[str] | None = None,
    batch_size: int | None = None,
) -> int:
    """Validate and write a table batch by batch: batch k is written and committed on a worker
    while batch k+1 is read and validated; commits stay in input order, one at a time."""
    from lakevec.write.embed import progress_bar
    from lakevec.write.table_input import (
        Columns,
        default_batch_rows,
        open_input,
        prepare_batch,
        record_batches,
        row_count,
    )

    data = open_input(data)
    batches = record_batches(data, batch_size or default_batch_rows(data, embeddings))
    bar = progress_bar(row_count(data) or 0, f"{op}_table", "row")
    columns = Columns(ids, documents, embeddings, uris, metadatas)

    def prepare(batch: pa.RecordBatch) -> tuple:
        return prepare_batch(prepare_rows, batch, op, columns)

    def write(row_ids, emb, docs, row_uris, metas) -> int:
        # Vectors of an import are not kept in memory: it stays bounded however large.
        if op == "add":
            engine.add(row_ids, emb, docs, row_uris, metas, cache_vectors=False)
        else:
            engine.upsert(row_ids, emb, docs, row_uris, metas, update_only=False, cache_vectors=False)
        # hand the batch's freed buffers back: mimalloc otherwise keeps them resident
        pa.default_memory_pool().release_unused()
        if bar is not None:
            bar.update(len(row_ids))
        return len(row_ids)

    total = 0
    pending: Future | None = None
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lakevec-import")
    try:
        for batch in batches:
            prepared = prepare(batch)
            if pending is not None:
                total += pending.result()
            pending = writer.submit(write, *prepared)
        if pending is not None:
            total += pending.result()
            pending = None
    finally:
        if pending is not None:  # a later batch failed: its predecessor still lands
            wait([pending])
        writer.shutdown()
        if bar is not None:
            bar.close()
    return total
