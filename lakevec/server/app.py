"""``lakevec run``: Chroma's REST API v2 over a lakevec root, for ``chromadb.HttpClient``.

The routes, JSON shapes and error bodies are the ones the chromadb 1.x client calls and parses
(``{"error": "<ChromaClassName>", "message": ...}``, so the client raises the same exception
classes as against Chroma). Requests run against the same engines as
:class:`~lakevec.PersistentClient`, so writes go through the ordinary commit protocol and a
server and direct users of one root stay consistent. Writes run on the server's thread pool;
queries on a local root run on the event loop.

Embeddings arrive as JSON lists or, as the client sends them once ``pre-flight-checks``
advertises ``supports_base64_encoding``, as base64 of little-endian float32: decoded with numpy,
not parsed as JSON numbers (:mod:`lakevec.server.wire` holds the codec and the guard).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from lakevec.extras import missing, require

try:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
except ImportError as exc:
    raise missing("fastapi", "lakevec run") from exc

from lakevec.client import AdminClient, Client
from lakevec.collection import Collection
from lakevec.config import Settings, only_defaults
from lakevec.errors import AuthorizationError, InvalidArgumentError, LakevecError, NotFoundError
from lakevec.expression import knn_nodes
from lakevec.server.config import ServerConfig
from lakevec.server.wire import (
    Guard,
    decode_embeddings,
    error_response,
    json_response,
    jsonable,
    parse_body,
)
from lakevec.version import __version__


class Service:
    """The API's operations on one root, independent of HTTP (the routes call these)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.settings = Settings(allow_reset=config.allow_reset)
        self.admin = AdminClient(self.settings, path=config.root, storage_options=config.storage_options)
        self.local = self.admin._storage.local
        self._clients: dict[tuple[str, str], Client] = {}
        self._lock = threading.Lock()

    def client(self, tenant: str, database: str) -> Client:
        key = (tenant, database)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            client = Client(
                self.settings,
                tenant,
                database,
                path=self.config.root,
                storage_options=self.config.storage_options,
                _storage=self.admin._storage,
            )
            with self._lock:
                client = self._clients.setdefault(key, client)
        else:
            client.get_database(database, tenant)  # deleted since: NotFoundError
        return client

    def collection_by_id(self, tenant: str, database: str, collection_id: str) -> Collection:
        client = self.client(tenant, database)
        records = client._database_doc(client._catalog.read())["collections"].values()
        record = next((r for r in records if r["id"] == collection_id), None)
        if record is None:
            raise NotFoundError(f"Collection [{collection_id}] does not exist")
        return client._wrap(record, None)

    def model(self, collection: Collection) -> dict[str, Any]:
        """A collection as chromadb's ``CollectionModel.from_json`` reads it."""
        try:
            dimension = collection._engine.dimension()
        except NotFoundError:  # deleted since the catalog named it: the call still answers, as Chroma's
            dimension = None
        return {
            "id": str(collection.id),
            "name": collection.name,
            "metadata": collection.metadata,
            "configuration_json": collection.configuration,
            "dimension": dimension,
            "tenant": collection.tenant,
            "database": collection.database,
            "version": 0,
            "log_position": 0,
            "schema": collection.schema,
        }

    def check_batch(self, ids: Any) -> None:
        if isinstance(ids, list) and len(ids) > self.config.max_batch_size:
            raise InvalidArgumentError(
                f"Cannot submit more than {self.config.max_batch_size:,} records at once: got {len(ids):,}"
            )

    def reset(self) -> bool:
        if not self.config.allow_reset:
            raise AuthorizationError("Reset is disabled by config")
        with self._lock:
            served = list(self._clients.values())
            self._clients.clear()
        for client in served:  # every tenant's and database's background folds, not only one client's
            client._stop_indexers()
        client = Client(self.settings, path=self.config.root, storage_options=self.config.storage_options)
        client.reset()
        self.admin = AdminClient(
            self.settings, path=self.config.root, storage_options=self.config.storage_options
        )
        return True


def _filters(body: dict[str, Any]) -> dict[str, Any]:
    """The row selection a get, query or delete body carries."""
    return {
        "ids": body.get("ids"),
        "where": body.get("where"),
        "where_document": body.get("where_document"),
        "where_sql": _field(body, "where_sql", (str,)),
    }


def _wire_configuration(configuration: dict[str, Any] | None) -> dict[str, Any] | None:
    """chromadb's client sends an hnsw block of defaults with every configuration it serializes
    (an embedding function alone makes one): such a block configures nothing, as on Chroma's
    server, so it may stand beside a schema."""
    if not configuration or not isinstance(configuration.get("hnsw"), dict):
        return configuration
    if only_defaults(configuration["hnsw"]):
        return {k: v for k, v in configuration.items() if k != "hnsw"}
    return configuration


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is not None and not isinstance(value, kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise InvalidArgumentError(f"{name} must be {expected}, got {type(value).__name__}")
    return value


def create_app(config: ServerConfig) -> Guard:
    """The ASGI application for ``config``: the FastAPI app (``.app``) behind its :class:`Guard`."""
    service = Service(config)
    app = FastAPI(title="lakevec", version=__version__)
    api = "/api/v2"
    tdb = api + "/tenants/{tenant}/databases/{database}"

    @app.exception_handler(LakevecError)
    async def lakevec_error(request: Request, exc: LakevecError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        body = {"error": "InvalidArgumentError", "message": str(exc.errors())[:2000]}
        return JSONResponse(body, status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return error_response(exc)

    def add(data: bytearray, chunk: bytes) -> None:
        data += chunk
        if len(data) > config.max_body_bytes:
            raise InvalidArgumentError(f"Request body over the limit of {config.max_body_bytes:,} bytes")

    async def body_of(request: Request) -> dict[str, Any]:
        data = bytearray()
        async for chunk in request.stream():
            add(data, chunk)
        return parse_body(data)

    async def query_from_asgi(tenant: str, database: str, collection_id: str, receive: Any) -> Response:
        """The query route for :class:`Guard`: the same work, the same error bodies."""
        try:
            data = bytearray()
            while True:
                message = await receive()
                add(data, message.get("body", b""))
                if not message.get("more_body"):
                    break
            return await answer_query(tenant, database, collection_id, parse_body(data))
        except Exception as exc:  # as the app's handlers: Chroma's body, or a JSON 500
            return error_response(exc)

    async def run(fn, *args):
        return await run_in_threadpool(fn, *args)

    async def read(work) -> Response:
        """``work()``'s result as JSON. On a local root a read runs on the event loop: handing
        it to a worker thread and back cost 0.4-0.5 ms of a 2.2 ms query round trip, and served
        8 clients slower, not faster (the GIL serializes most of it anyway). A remote root may
        download on a first read, which must not stall the other requests: that goes to a thread."""
        return json_response(work() if service.local else await run(work))

    # -- server ----------------------------------------------------------------------------
    @app.get(api)
    @app.get(api + "/heartbeat")
    async def heartbeat():
        return {"nanosecond heartbeat": time.time_ns()}

    @app.get(api + "/version")
    async def version():
        return __version__

    @app.get(api + "/pre-flight-checks")
    async def pre_flight():
        return {"max_batch_size": config.max_batch_size, "supports_base64_encoding": True}

    @app.get(api + "/auth/identity")
    async def identity():
        return {"user_id": "", "tenant": "default_tenant", "databases": ["default_database"]}

    @app.post(api + "/reset")
    async def reset():
        return await run(service.reset)

    # -- tenants and databases -------------------------------------------------------------
    @app.post(api + "/tenants")
    async def create_tenant(request: Request):
        body = await body_of(request)
        await run(service.admin.create_tenant, _field(body, "name", (str,)))
        return {}

    @app.get(api + "/tenants/{tenant}")
    async def get_tenant(tenant: str):
        return await run(service.admin.get_tenant, tenant)

    @app.post(api + "/tenants/{tenant}/databases")
    async def create_database(tenant: str, request: Request):
        body = await body_of(request)
        await run(service.admin.create_database, _field(body, "name", (str,)), tenant)
        return {}

    @app.get(api + "/tenants/{tenant}/databases")
    async def list_databases(tenant: str, limit: int | None = None, offset: int | None = None):
        dbs = await run(service.admin.list_databases, limit, offset, tenant)
        return [{**db, "id": str(db["id"])} for db in dbs]

    @app.get(tdb)
    async def get_database(tenant: str, database: str):
        db = await run(service.admin.get_database, database, tenant)
        return {**db, "id": str(db["id"])}

    @app.delete(tdb)
    async def delete_database(tenant: str, database: str):
        await run(service.admin.delete_database, database, tenant)
        return {}

    # -- collections -----------------------------------------------------------------------
    @app.get(tdb + "/collections")
    async def list_collections(
        tenant: str, database: str, limit: int | None = None, offset: int | None = None
    ):
        def work():
            return [
                service.model(c) for c in service.client(tenant, database).list_collections(limit, offset)
            ]

        return await run(work)

    @app.get(tdb + "/collections_count")
    async def count_collections(tenant: str, database: str):
        return await run(lambda: service.client(tenant, database).count_collections())

    @app.post(tdb + "/collections")
    async def create_collection(tenant: str, database: str, request: Request):
        body = await body_of(request)

        def work():
            client = service.client(tenant, database)
            collection = client.create_collection(
                body.get("name"),
                configuration=_wire_configuration(_field(body, "configuration", (dict,))),
                metadata=body.get("metadata"),
                embedding_function=None,
                schema=_field(body, "schema", (dict,)),
                get_or_create=bool(_field(body, "get_or_create", (bool,), False)),
            )
            return service.model(collection)

        return await run(work)

    @app.get(tdb + "/collections/by-id/{collection_id}")
    async def get_collection_by_id(tenant: str, database: str, collection_id: str):
        return await run(lambda: service.model(service.collection_by_id(tenant, database, collection_id)))

    @app.get(tdb + "/collections/{name}")
    async def get_collection(tenant: str, database: str, name: str):
        client_of = service.client
        return await run(
            lambda: service.model(client_of(tenant, database).get_collection(name, embedding_function=None))
        )

    @app.put(tdb + "/collections/{collection_id}")
    async def modify_collection(tenant: str, database: str, collection_id: str, request: Request):
        body = await body_of(request)

        def work():
            collection = service.collection_by_id(tenant, database, collection_id)
            collection.modify(
                name=_field(body, "new_name", (str,)),
                metadata=_field(body, "new_metadata", (dict,)),
                configuration=_field(body, "new_configuration", (dict,)),
            )
            return {}

        return await run(work)

    @app.delete(tdb + "/collections/{name}")
    async def delete_collection(tenant: str, database: str, name: str):
        await run(lambda: service.client(tenant, database).delete_collection(name))
        return {}

    # -- records ---------------------------------------------------------------------------
    def writer(op: str):
        async def write(tenant: str, database: str, collection_id: str, request: Request):
            body = await body_of(request)

            def work():
                service.check_batch(body.get("ids"))
                collection = service.collection_by_id(tenant, database, collection_id)
                getattr(collection, op)(
                    ids=body.get("ids"),
                    embeddings=decode_embeddings(body.get("embeddings"), "embeddings"),
                    metadatas=body.get("metadatas"),
                    documents=body.get("documents"),
                    uris=body.get("uris"),
                )
                return {}

            return json_response(await run(work), 201 if op == "add" else 200)

        return write

    for op in ("add", "upsert", "update"):
        app.post(tdb + "/collections/{collection_id}/" + op, name=op)(writer(op))

    @app.post(tdb + "/collections/{collection_id}/get")
    async def get(tenant: str, database: str, collection_id: str, request: Request):
        body = await body_of(request)

        def work():
            collection = service.collection_by_id(tenant, database, collection_id)
            result = collection.get(
                limit=body.get("limit"),
                offset=body.get("offset"),
                include=body.get("include"),
                order_by=body.get("order_by"),
                **_filters(body),
            )
            return jsonable(result)

        return await read(work)

    @app.post(tdb + "/collections/{collection_id}/query")
    async def query(tenant: str, database: str, collection_id: str, request: Request):
        return await answer_query(tenant, database, collection_id, await body_of(request))

    async def answer_query(tenant: str, database: str, collection_id: str, body: dict[str, Any]) -> Response:
        def work():
            n_results = body.get("n_results", 10)
            if isinstance(n_results, int) and n_results > config.max_n_results:
                raise InvalidArgumentError(f"n_results must be at most {config.max_n_results:,}")
            embeddings = decode_embeddings(body.get("query_embeddings"), "query_embeddings")
            if embeddings is None:
                raise InvalidArgumentError("query_embeddings are required (the client embeds query_texts)")
            service.check_batch(embeddings)
            collection = service.collection_by_id(tenant, database, collection_id)
            result = collection.query(
                query_embeddings=embeddings,
                n_results=n_results,
                include=body.get("include"),
                **_filters(body),
            )
            return jsonable(result)

        return await read(work)

    @app.post(tdb + "/collections/{collection_id}/search")
    async def search(tenant: str, database: str, collection_id: str, request: Request):
        body = await body_of(request)

        def work():
            searches = body.get("searches")
            if not isinstance(searches, list):
                raise InvalidArgumentError("Expected 'searches' to be a list of searches")
            service.check_batch(searches)
            limits = [knn.get("limit") for knn in knn_nodes(searches)]
            if any(isinstance(n, int) and n > config.max_n_results for n in limits):
                raise InvalidArgumentError(f"Knn limit must be at most {config.max_n_results:,}")
            collection = service.collection_by_id(tenant, database, collection_id)
            return jsonable(collection.search(searches))

        return await read(work)

    @app.post(tdb + "/collections/{collection_id}/delete")
    async def delete(tenant: str, database: str, collection_id: str, request: Request):
        body = await body_of(request)

        def work():
            collection = service.collection_by_id(tenant, database, collection_id)
            return collection.delete(**_filters(body), limit=body.get("limit"))

        return await run(work)

    @app.post(tdb + "/collections/{collection_id}/fork")
    async def fork(tenant: str, database: str, collection_id: str, request: Request):
        body = await body_of(request)

        def work():
            collection = service.collection_by_id(tenant, database, collection_id)
            return service.model(collection.fork(_field(body, "new_name", (str,))))

        return await run(work)

    @app.get(tdb + "/collections/{collection_id}/fork_count")
    async def fork_count(tenant: str, database: str, collection_id: str):
        return await run(
            lambda: {"count": service.collection_by_id(tenant, database, collection_id).fork_count()}
        )

    @app.get(tdb + "/collections/{collection_id}/count")
    async def count(tenant: str, database: str, collection_id: str):
        return await run(lambda: service.collection_by_id(tenant, database, collection_id).count())

    # outermost, so a query skips FastAPI's middleware stack as well as its routing
    return Guard(app, config, query_from_asgi)


_CONFIG_VARIABLE = "LAKEVEC_SERVER_CONFIG"


def app_from_environment() -> Guard:
    """The app for each worker process of ``lakevec run --workers N`` (uvicorn imports it)."""
    return create_app(ServerConfig(**json.loads(os.environ[_CONFIG_VARIABLE])))


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the server until interrupted; ``workers`` > 1 runs that many processes on one socket
    (each with its own engines over the same root: writes meet in the commit protocol)."""
    import dataclasses

    uvicorn = require("uvicorn", "lakevec run")

    if config.token is None and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"lakevec: serving {config.root} on {host}:{port} WITHOUT a token (anyone who can reach it can write)"
        )
    elif config.token is None:
        print(f"lakevec: serving {config.root} on {host}:{port}, no token: local connections only")
    else:
        print(f"lakevec: serving {config.root} on {host}:{port}, token required")
    if workers > 1:
        os.environ[_CONFIG_VARIABLE] = json.dumps(dataclasses.asdict(config))
        uvicorn.run(
            "lakevec.server.app:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )
        return
    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", access_log=False)
