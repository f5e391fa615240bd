"""What a lakevec collection offers beyond Chroma's API: tables in and out (Arrow, polars,
pandas, DuckDB), versions, tags, forks and maintenance. ``Collection`` inherits it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pyarrow as pa

from lakevec import interop
from lakevec import validate as v
from lakevec.engine import CollectionEngine
from lakevec.errors import InvalidArgumentError
from lakevec.extras import require
from lakevec.maintenance.compact import compact
from lakevec.maintenance.vacuum import vacuum

L = TypeVar("L", bound="Lakehouse")


class Lakehouse:
    """Mixed into ``Collection``: these methods use its engine, client and indexer."""

    _engine: CollectionEngine
    _client: Any
    _record: dict[str, Any]
    _indexer: Any
    _embedding_function: Any
    _prepare: Callable[..., Any]
    _with_engine: Callable[[CollectionEngine], Any]  # the same collection read through another engine
    tenant: str
    database: str

    def _local(self, what: str) -> CollectionEngine:
        """The engine, for the calls only a root opened in this process can serve."""
        if not isinstance(self._engine, CollectionEngine):
            raise NotImplementedError(
                f"{what} is not available through HttpClient: open the root with PersistentClient for it"
            )
        return self._engine

    # -- lakehouse extras (not in Chroma's API) ---------------------------------------------
    def to_arrow(
        self,
        where: Any = None,
        where_document: Any = None,
        include: Any = None,
        *,
        where_sql: str | None = None,
    ) -> pa.Table:
        """Live rows in insertion order: ``id``, ``document``, ``uri``, one typed column per
        metadata key, ``embedding`` (fixed_size_list<float32>)."""
        v.validate_filters(None, where, where_document, where_sql)
        include = list(interop.TABLE_INCLUDE if include is None else include)
        bad = [i for i in include if i not in interop.TABLE_INCLUDE]
        if bad:
            raise InvalidArgumentError(f"include must be among {interop.TABLE_INCLUDE}, got {bad}")
        return interop.collection_table(
            self._engine,
            where=where or None,
            where_document=where_document or None,
            where_sql=where_sql,
            include=include,
        )

    def add_table(self, data: Any, **columns: Any) -> int:
        """``add`` every row of a table (pyarrow / polars / pandas / DuckDB / a Parquet, CSV or
        JSON-lines path), streamed in batches. Returns the number of rows read."""
        return self._write_table(data, "add", **columns)

    def upsert_table(self, data: Any, **columns: Any) -> int:
        """``upsert`` every row of a table; see :meth:`add_table`."""
        return self._write_table(data, "upsert", **columns)

    def _write_table(self, data: Any, op: str, **columns: Any) -> int:
        return interop.import_table(self._engine, self._prepare, data, op, **columns)

    def duckdb(self, con: Any = None):
        """The live rows as a DuckDB relation (Parquet scanned in place on local roots)."""
        import duckdb

        return interop.duckdb_relation(self._engine, con if con is not None else duckdb.connect())

    def scan(self):
        """The live rows as a polars LazyFrame; filters and projections reach the Parquet scan."""
        return self.duckdb().pl(lazy=True)

    def to_polars(self, **kwargs: Any):
        import polars as pl

        return pl.from_arrow(self.to_arrow(**kwargs))

    def to_pandas(self, **kwargs: Any):
        require("pandas", "to_pandas()")
        return self.to_arrow(**kwargs).to_pandas()

    # -- versions ------------------------------------------------------------------------
    @property
    def version(self) -> int:
        """The version this object reads: the latest, or the one it was opened at."""
        return self._engine.snapshot().version

    def versions(self) -> list[dict[str, Any]]:
        """Every retained version, oldest first: number, commit time (UTC), operation, rows."""
        return [
            {
                "version": m.version,
                "timestamp": datetime.fromtimestamp(m.timestamp, tz=timezone.utc),
                "operation": m.operation,
                "rows": sum(f.rows for f in m.fragments),
                "live_rows": m.live_rows,
            }
            for m in self._engine.manifests()
        ]

    def at(
        self: L,
        version: int | None = None,
        *,
        timestamp: datetime | float | None = None,
        tag: str | None = None,
    ) -> L:
        """This collection as it was at ``version`` (or at ``timestamp``, or at the version
        ``tag`` names), read-only: ``get``, ``query``, ``search``, ``count``, ``to_arrow`` and
        friends work; writes raise."""
        if sum(x is not None for x in (version, timestamp, tag)) != 1:
            raise InvalidArgumentError("give exactly one of version, timestamp or tag")
        if tag is not None:
            version = self._engine.tags.get(tag)
        elif timestamp is not None:
            seconds = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
            version = self._engine.version_at(seconds)
        assert version is not None  # exactly one of the three was given
        return self._with_engine(self._engine.pinned(version))

    def tag(self, name: str, version: int | None = None) -> int:
        """Name a version (the one this object reads by default) so that vacuum keeps it and
        ``at(tag=name)`` opens it. Returns the version tagged."""
        engine = self._local("tag")
        version = engine.snapshot().version if version is None else version
        engine.pinned(version)  # checks that the version exists and is retained
        engine.tags.create(name, version)
        return version

    def tags(self) -> dict[str, int]:
        """Every tag of this collection and the version it names."""
        return self._local("tags").tags.all()

    def delete_tag(self, name: str) -> None:
        """Remove a tag; its version is then kept only as long as vacuum's window keeps it."""
        self._local("delete_tag").tags.delete(name)

    def fork(self: L, new_name: str) -> L:
        """A new collection named ``new_name`` holding this collection's rows (as of the version
        this object reads), sharing its files: nothing is copied, and later writes to either
        collection do not show in the other. Chroma offers this in its cloud only."""
        return self._client._fork_collection(self, new_name)

    def fork_count(self) -> int:
        """How many live collections were forked from this one."""
        if not isinstance(self._engine, CollectionEngine):
            return self._client._fork_count(self)  # type: ignore[attr-defined]
        return self._engine.fork_count()

    def vacuum(
        self,
        older_than: timedelta = timedelta(days=7),
        keep_versions: int = 1,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete old versions and every file no retained version needs (superseded fragments,
        indexes, deletion files, orphans of crashed writes). Versions newer than ``older_than``
        and the newest ``keep_versions`` are retained; ``dry_run`` lists without deleting."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
            raise InvalidArgumentError(f"older_than must be a non-negative timedelta, got {older_than!r}")
        if not isinstance(keep_versions, int) or isinstance(keep_versions, bool) or keep_versions < 1:
            raise InvalidArgumentError(f"keep_versions must be an int >= 1, got {keep_versions!r}")
        return dataclasses.asdict(vacuum(self._local("vacuum"), float(seconds), keep_versions, dry_run))

    def compact(self, target_rows: int = 1_000_000) -> dict[str, Any]:
        """Rewrite small fragments and fragments with dead rows into fragments of up to
        ``target_rows`` live rows, rebuild indexes that are mostly dead keys, and index
        everything. Concurrent writes are kept (the commit rebases over them)."""
        if not isinstance(target_rows, int) or isinstance(target_rows, bool) or target_rows < 1:
            raise InvalidArgumentError(f"target_rows must be a positive int, got {target_rows!r}")
        engine = self._local("compact")
        if self._indexer is None:
            raise engine.read_only_error()
        return compact(self._indexer, target_rows)

    def stats(self) -> dict[str, Any]:
        """Version, retained versions, fragments, rows (live and dead), indexed fraction and
        bytes on storage of the version this object reads."""
        return self._engine.stats()

    def restore(self, version: int) -> int:
        """Make the rows of an older version the latest state, as a new commit (history is
        kept: the versions in between stay readable). Returns the new version number."""
        if self._engine.pinned_version is not None:
            raise self._engine.read_only_error()
        return self._engine.restore(version)
