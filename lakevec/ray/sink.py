"""Ray Data -> a collection: write tasks stage fragments side by side, the driver commits once.

Each write task validates its rows as ``add_table`` does and writes them as fragments of
``rows_per_fragment`` rows, under names no manifest lists yet (:mod:`lakevec.write.staged`).
``on_write_complete`` then commits them all in one version: a reader sees every row of the
dataset or none. A task that Ray retries (its worker died) leaves its first attempt's files
unlisted; the commit deletes them, and a failed write deletes everything it staged.
"""

from __future__ import annotations

from typing import Any

from ray.data import Datasink
from ray.data.block import BlockAccessor

from lakevec.errors import InvalidArgumentError
from lakevec.ray.target import Target
from lakevec.write.commit import PART_BYTES
from lakevec.write.staged import Staged, commit_staged, new_job, stage, sweep, task_seq
from lakevec.write.table_input import Columns, rebatch


class CollectionSink(Datasink):
    """``ds.write_datasink(CollectionSink(root, name))`` adds every row of ``ds`` to the
    collection ``name`` under ``root`` (created if missing), as one commit.

    Columns are named as for ``add_table``: ``id``, ``embedding`` (rows without one are
    embedded by the collection's embedding function; :func:`lakevec.ray.embed` does that as a
    Ray stage instead), ``document``, ``uri``; every other column is metadata unless
    ``metadatas`` lists them. After the write, ``sink.result`` holds the committed version and
    the number of rows added (ids the collection already held are skipped, as ``add`` does)."""

    def __init__(
        self,
        root: str,
        name: str,
        *,
        storage_options: dict[str, Any] | None = None,
        tenant: str | None = None,
        database: str | None = None,
        create: bool = True,
        configuration: dict[str, Any] | None = None,
        ids: str = "id",
        documents: str | None = "document",
        embeddings: str | None = "embedding",
        uris: str | None = None,
        metadatas: list[str] | None = None,
        rows_per_fragment: int | None = None,
    ) -> None:
        base = Target(root, name, storage_options=dict(storage_options or {}))
        if tenant is not None or database is not None:
            base = Target(root, name, tenant or base.tenant, database or base.database, base.storage_options)
        self.target = base
        client = base.client()
        if create:
            collection = client.get_or_create_collection(name, configuration=configuration)
        else:
            collection = client.get_collection(name)
        dimension = collection._engine.dimension()
        self.rows_per_fragment = rows_per_fragment or max(1024, PART_BYTES // (4 * (dimension or 384)))
        self.columns = Columns(ids, documents, embeddings, uris, metadatas)
        self.result: dict[str, Any] | None = None
        # the job names this write's files; rows take _seq from far above the collection's
        self.job = new_job()
        self.seq = collection._engine.snapshot(fresh=True).manifest.next_seq

    def on_write_start(self, schema: Any = None) -> None:
        if self.result is not None:  # the tasks would reuse the first write's job and _seq
            raise InvalidArgumentError("a CollectionSink writes once: make a new one for each write")

    @property
    def min_rows_per_write(self) -> int:
        return self.rows_per_fragment

    def get_name(self) -> str:
        return "LakevecCollection"

    def write(self, blocks: Any, ctx: Any) -> list[Staged]:
        collection = self.target.collection()
        tables = (BlockAccessor.for_block(block).to_arrow() for block in blocks)
        batches = rebatch((b for t in tables for b in t.to_batches()), self.rows_per_fragment)
        return stage(collection, batches, self.columns, self.job, task_seq(self.seq, ctx.task_idx))

    def on_write_complete(self, write_result: Any) -> None:
        staged = [s for returned in write_result.write_returns for s in returned]
        engine = self.target.collection()._engine
        manifest = commit_staged(engine, staged)
        sweep(engine, self.job, manifest.files() if manifest is not None else set())
        added = (
            sum(e.live_rows for e in manifest.fragments if e.id.startswith(f"{self.job}-")) if manifest else 0
        )
        self.result = {"version": manifest.version if manifest else None, "rows": added}

    def on_write_failed(self, error: Exception) -> None:
        sweep(self.target.collection()._engine, self.job, set())


def write(ds: Any, root: str, name: str, **options: Any) -> dict[str, Any]:
    """Add every row of the Ray dataset ``ds`` to a collection in one commit (see
    :class:`CollectionSink` for the options); the committed version and rows added."""
    sink = CollectionSink(root, name, **options)
    ds.write_datasink(sink)
    assert sink.result is not None
    return sink.result
