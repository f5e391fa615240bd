"""Clients with chromadb 1.x's names and arguments, over one root (a path or fsspec URL)."""

from __future__ import annotations

import copy
import os
import posixpath
import re
import threading
import time
import uuid
import weakref
from typing import Any

from lakevec import validate as v
from lakevec.collection import Collection
from lakevec.config import Settings, collection_configuration, modified_configuration, schema_json
from lakevec.engine import CollectionEngine
from lakevec.errors import (
    AuthorizationError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    UniqueConstraintError,
)
from lakevec.interop import sql_connection
from lakevec.lake import forks
from lakevec.lake.catalog import DEFAULT_DATABASE, DEFAULT_TENANT, Catalog
from lakevec.lake.storage import Storage
from lakevec.maintenance.indexer import Indexer
from lakevec.types import Database, Tenant
from lakevec.utils.embedding_functions import DefaultEmbeddingFunction, resolve_embedding_function
from lakevec.version import __version__

_DEFAULT_EF = DefaultEmbeddingFunction()


_DB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){1,126}[A-Za-z0-9]$")


def _validate_db_name(name: Any, what: str) -> str:
    """Tenant and database names become path segments of the root: letters, digits, ``_``,
    ``-`` and single dots only, so no name can climb out of its prefix."""
    if not isinstance(name, str) or not _DB_NAME.match(name):
        raise InvalidArgumentError(
            f"{what} name must be 3-128 characters from [a-zA-Z0-9._-], starting and ending with a "
            f"letter or digit, without '..'; got {name!r}"
        )
    return name


def _directory(record: dict) -> str:
    return record.get("dir") or f"collections/{record['id']}"


def _new_directory(collection_id: str, tenant: str, database: str) -> str | None:
    """Where a new collection's files go: ``collections/<id>`` in the default tenant and
    database (the layout every root has had), else under the tenant's and database's own
    prefix, so tenants and databases never share a directory."""
    if (tenant, database) == (DEFAULT_TENANT, DEFAULT_DATABASE):
        return None
    return f"tenants/{tenant}/databases/{database}/collections/{collection_id}"


class AdminClient:
    """Tenants and databases of a root (Chroma's ``AdminClient``)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        path: str | None = None,
        storage_options: dict[str, Any] | None = None,
        _storage: Storage | None = None,
        **storage: Any,
    ) -> None:
        self.settings = settings or Settings()
        if _storage is None:  # storage: cache_dir, cache_bytes, single_writer (see Storage)
            _storage = Storage(path or _memory_root(self), storage_options, **storage)
        self._storage = _storage
        self._catalog = Catalog(_storage)

    def create_tenant(self, name: str) -> None:
        name = _validate_db_name(name, "Tenant")

        def change(doc: dict) -> None:
            if name in doc["tenants"]:
                raise UniqueConstraintError(f"Tenant {name} already exists")
            doc["tenants"][name] = {"databases": {}}

        self._catalog.update(change)

    def get_tenant(self, name: str) -> Tenant:
        if Catalog.tenant(self._catalog.read(), name) is None:
            raise NotFoundError(f"Tenant [{name}] not found")
        return {"name": name}

    def create_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        name = _validate_db_name(name, "Database")

        def change(doc: dict) -> None:
            t = Catalog.tenant(doc, tenant)
            if t is None:
                raise NotFoundError(f"Tenant [{tenant}] not found")
            if name in t["databases"]:
                raise UniqueConstraintError(f"Database {name} already exists for tenant {tenant}")
            t["databases"][name] = Catalog.new_database()

        self._catalog.update(change)

    def get_database(self, name: str, tenant: str = DEFAULT_TENANT) -> Database:
        db = Catalog.database(self._catalog.read(), tenant, name)
        if db is None:
            raise NotFoundError(f"Database [{name}] not found in tenant [{tenant}]")
        return {"id": uuid.UUID(db["id"]), "name": name, "tenant": tenant}

    def list_databases(
        self, limit: int | None = None, offset: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> list[Database]:
        limit, offset = v.validate_limit(limit, "limit"), v.validate_limit(offset, "offset")
        t = Catalog.tenant(self._catalog.read(), tenant)
        if t is None:
            raise NotFoundError(f"Tenant [{tenant}] not found")
        names = list(t["databases"])[offset or 0 :]
        names = names if limit is None else names[:limit]
        return [{"id": uuid.UUID(t["databases"][n]["id"]), "name": n, "tenant": tenant} for n in names]

    def delete_database(self, name: str, tenant: str = DEFAULT_TENANT) -> None:
        def change(doc: dict) -> dict:
            db = Catalog.database(doc, tenant, name)
            if db is None:
                raise NotFoundError(f"Database [{name}] not found in tenant [{tenant}]")
            del doc["tenants"][tenant]["databases"][name]
            return db

        db = self._catalog.update(change)
        for record in db["collections"].values():
            self._storage.delete_tree(self._storage.join(_directory(record)))


def _memory_root(owner: object) -> str:
    """A private ``memory://`` prefix, removed when its client is garbage collected."""
    root = f"memory://lakevec-{uuid.uuid4().hex}"

    def cleanup(url: str = root) -> None:
        storage = Storage(url)
        storage.delete_tree(storage.root)

    weakref.finalize(owner, cleanup)
    return root


class Client(AdminClient):
    """A client bound to one tenant and database. ``Client()`` alone is in memory, as in Chroma."""

    def __init__(
        self,
        settings: Settings | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
        *,
        path: str | None = None,
        storage_options: dict[str, Any] | None = None,
        **storage: Any,
    ) -> None:
        settings = settings or Settings()
        if path is None and settings.is_persistent:
            path = settings.persist_directory
        super().__init__(settings, path=path, storage_options=storage_options, **storage)
        self._engines: dict[str, tuple[CollectionEngine, Indexer]] = {}
        self._engines_lock = threading.Lock()
        self.tenant, self.database = DEFAULT_TENANT, DEFAULT_DATABASE
        self.set_tenant(tenant, database)

    # -- identity ------------------------------------------------------------------------
    def heartbeat(self) -> int:
        return time.time_ns()

    def get_version(self) -> str:
        return __version__

    def set_tenant(self, tenant: str, database: str = DEFAULT_DATABASE) -> None:
        self.get_tenant(tenant)
        self.get_database(database, tenant)
        self.tenant, self.database = tenant, database

    def set_database(self, database: str) -> None:
        self.set_tenant(self.tenant, database)

    def reset(self) -> bool:
        if not self.settings.allow_reset:
            raise AuthorizationError("Reset is disabled by config")
        self._stop_indexers()
        self._storage.delete_tree(self._storage.root)
        if self._storage.local:
            os.makedirs(self._storage.root, exist_ok=True)
        self._catalog = Catalog(self._storage)
        return True

    # -- collections ---------------------------------------------------------------------
    def _database_doc(self, doc: dict) -> dict:
        db = Catalog.database(doc, self.tenant, self.database)
        if db is None:
            raise NotFoundError(f"Database [{self.database}] not found in tenant [{self.tenant}]")
        return db

    def _engine(self, record: dict) -> tuple[CollectionEngine, Indexer]:
        """The collection's engine and its indexer, one pair per collection per client."""
        collection_id = record["id"]
        with self._engines_lock:
            pair = self._engines.get(collection_id)
            if pair is None:
                engine = CollectionEngine(self._storage, collection_id, record.get("dir"))
                pair = self._engines[collection_id] = (engine, Indexer(engine))
            return pair

    def _wrap(self, record: dict, embedding_function: Any) -> Collection:
        stored = (record.get("configuration") or {}).get("embedding_function")
        ef = resolve_embedding_function(record["name"], stored, embedding_function, _DEFAULT_EF)
        engine, indexer = self._engine(record)
        return Collection(self, record, engine, ef, self.tenant, self.database, indexer)

    def create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = _DEFAULT_EF,
        data_loader: Any = None,
        get_or_create: bool = False,
    ) -> Collection:
        """A new collection (Chroma's arguments). ``schema`` (chromadb's ``Schema`` or its JSON)
        is kept and reported back; its vector index settings join the configuration."""
        name = v.validate_collection_name(name)
        metadata = v.validate_collection_metadata(metadata)
        schema = schema_json(schema)
        config = collection_configuration(configuration, metadata, embedding_function, schema)
        record = {"id": str(uuid.uuid4()), "name": name, "metadata": metadata, "configuration": config}
        if schema is not None:
            record["schema"] = schema
        directory = _new_directory(record["id"], self.tenant, self.database)
        if directory is not None:
            record["dir"] = directory

        def change(doc: dict) -> dict:
            collections = self._database_doc(doc)["collections"]
            if name in collections:
                if get_or_create:
                    return collections[name]
                raise InternalError(f"Collection [{name}] already exists")
            collections[name] = record
            return record

        existing = self._database_doc(self._catalog.read())["collections"].get(name)
        if existing is not None and get_or_create:
            return self._wrap(existing, embedding_function)
        # the collection's first version is written before the catalog names it, so a
        # collection that another client can see always opens; a lost race deletes it
        self._engine(record)[0].create(config)
        try:
            result = self._catalog.update(change)
        except BaseException:
            self._discard(record)
            raise
        if result is not record:
            self._discard(record)
        return self._wrap(result, embedding_function)

    def _stop_indexers(self) -> None:
        """Forget this client's engines, stopping and joining their background folds and merges
        first: none may write into files about to be deleted."""
        with self._engines_lock:
            pairs = list(self._engines.values())
            self._engines.clear()
        for _, indexer in pairs:
            indexer.stop(wait=True)

    def _discard(self, record: dict) -> None:
        """Remove a collection's files (one that no catalog names, or no longer does); files
        that live forks read stay until the last of them is deleted."""
        with self._engines_lock:
            pair = self._engines.pop(record["id"], None)
        if pair is not None:  # a background merge writing into data/ made the delete fail
            pair[1].stop(wait=True)
        forks.delete_collection(self._storage, self._storage.join(_directory(record)))

    def _fork_collection(self, collection: Collection, new_name: str) -> Collection:
        """A copy-on-write copy of ``collection`` (of the version it reads) named ``new_name``,
        beside it in its tenant and database."""
        new_name = v.validate_collection_name(new_name)
        source = collection._record
        record = copy.deepcopy(source)
        record.update(id=str(uuid.uuid4()), name=new_name)
        record["forked_from"] = {"id": source["id"], "version": collection.version}
        if source.get("dir"):
            record["dir"] = posixpath.join(posixpath.dirname(source["dir"]), record["id"])

        def check(doc: dict) -> dict:
            """The database's collections, if the fork may join them."""
            db = Catalog.database(doc, collection.tenant, collection.database)
            if db is None:
                raise NotFoundError(f"Database [{collection.database}] not found")
            if new_name in db["collections"]:
                raise InternalError(f"Collection [{new_name}] already exists")
            if db["collections"].get(source["name"], {}).get("id") != source["id"]:
                raise NotFoundError(f"Collection [{source['name']}] does not exist")
            return db["collections"]

        def change(doc: dict) -> dict:
            check(doc)[new_name] = record
            return record

        check(self._catalog.read())  # refuse a taken name before writing a file
        collection._engine.fork(_directory(record))
        try:
            self._catalog.update(change)
        except BaseException:
            self._discard(record)
            raise
        return self._wrap(record, collection._embedding_function)

    def get_collection(
        self,
        name: str,
        embedding_function: Any = _DEFAULT_EF,
        data_loader: Any = None,
        *,
        version: int | None = None,
    ) -> Collection:
        """``version=N`` opens the collection as it was at version N, read-only."""
        record = self._database_doc(self._catalog.read())["collections"].get(name)
        if record is None:
            raise NotFoundError(f"Collection [{name}] does not exist")
        collection = self._wrap(record, embedding_function)
        return collection if version is None else collection.at(version)

    def get_or_create_collection(
        self,
        name: str,
        schema: Any = None,
        configuration: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        embedding_function: Any = _DEFAULT_EF,
        data_loader: Any = None,
    ) -> Collection:
        return self.create_collection(
            name, schema, configuration, metadata, embedding_function, data_loader, get_or_create=True
        )

    def list_collections(self, limit: int | None = None, offset: int | None = None) -> list[Collection]:
        limit, offset = v.validate_limit(limit, "limit"), v.validate_limit(offset, "offset")
        records = list(self._database_doc(self._catalog.read())["collections"].values())
        records = records[offset or 0 :]
        if limit is not None:
            records = records[:limit]
        return [self._wrap(r, _DEFAULT_EF) for r in records]

    def count_collections(self) -> int:
        return len(self._database_doc(self._catalog.read())["collections"])

    def delete_collection(self, name: str) -> None:
        def change(doc: dict) -> dict:
            collections = self._database_doc(doc)["collections"]
            if name not in collections:
                raise NotFoundError(f"Collection [{name}] does not exist")
            return collections.pop(name)

        self._discard(self._catalog.update(change))

    def sql(self, query: str, params: list | None = None):
        """Run DuckDB SQL where every collection of this database is a view of its live rows
        (named as the collection; metadata keys are columns).

        Returns a DuckDB relation, which runs its query on each fetch: ``.pl()`` (Polars),
        ``.to_arrow_table()`` (a pyarrow Table), ``.fetchall()`` (a list of tuples), ``.df()``
        (pandas). DuckDB 2 relations have no ``fetchone()``: use ``.limit(1).fetchall()``; and
        their ``.arrow()`` is a ``RecordBatchReader`` (``.read_all()`` gives the Table)."""
        con = sql_connection({c.name: c._engine for c in self.list_collections()})
        return con.sql(query, params=params) if params else con.sql(query)

    # -- called by Collection ------------------------------------------------------------
    def _check_exists(self, collection: Collection) -> None:
        records = self._database_doc(self._catalog.read())["collections"].values()
        if not any(r["id"] == str(collection.id) for r in records):
            raise NotFoundError(f"Collection [{collection.name}] does not exist")

    def _modify_collection(
        self,
        collection: Collection,
        name: str | None,
        metadata: dict[str, Any] | None,
        configuration: dict[str, Any] | None,
    ) -> dict:
        if name is not None:
            v.validate_collection_name(name)
        if metadata is not None:
            metadata = v.validate_collection_metadata(metadata)
        cid = str(collection.id)

        def change(doc: dict) -> dict:
            collections = self._database_doc(doc)["collections"]
            old_name = next((n for n, r in collections.items() if r["id"] == cid), None)
            if old_name is None:
                raise NotFoundError(f"Collection [{collection.name}] does not exist")
            record = dict(collections[old_name])
            if name is not None and name != old_name:
                if name in collections:
                    raise InternalError(f"Collection [{name}] already exists")
                del collections[old_name]
                record["name"] = name
            if metadata is not None:
                record["metadata"] = metadata
            if configuration is not None:
                record["configuration"] = modified_configuration(record["configuration"], configuration)
            collections[record["name"]] = record
            return record

        return self._catalog.update(change)


class PersistentClient(Client):
    """A client over a local directory or any fsspec URL (``s3://bucket/prefix``, ``gs://``,
    ``az://``, ...). ``storage_options`` go to the fsspec filesystem (credentials, endpoint);
    remote files are cached under ``cache_dir`` (bounded by ``cache_bytes``); ``single_writer``
    allows an object store without conditional writes when one process is the only writer;
    ``consistency_interval`` bounds how stale a read may be on an object store (default 1 s;
    writes, and reads after this process's own writes, are always current)."""

    def __init__(
        self,
        path: str = "./lakevec_data",
        settings: Settings | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
        storage_options: dict[str, Any] | None = None,
        *,
        cache_dir: str | None = None,
        cache_bytes: int | None = None,
        single_writer: bool | None = None,
        consistency_interval: float | None = None,
    ) -> None:
        super().__init__(
            settings,
            tenant,
            database,
            path=str(path),
            storage_options=storage_options,
            cache_dir=cache_dir,
            cache_bytes=cache_bytes,
            single_writer=single_writer,
            consistency_interval=consistency_interval,
        )


class EphemeralClient(Client):
    """A client over a private in-memory root (fsspec ``memory://``), gone with the client."""

    def __init__(
        self,
        settings: Settings | None = None,
        tenant: str = DEFAULT_TENANT,
        database: str = DEFAULT_DATABASE,
    ) -> None:
        settings = settings or Settings()
        settings.is_persistent = False
        super().__init__(settings, tenant, database)
