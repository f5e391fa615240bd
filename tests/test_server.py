"""``lakevec run`` over real HTTP, driven by the official chromadb client (and raw httpx)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("fastapi")
from chromadb.config import Settings  # noqa: E402

import lakevec  # noqa: E402
import lakevec.errors  # noqa: E402

TOKEN = "s3cr3t-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(root, *extra: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = dict(os.environ, LAKEVEC_AUTO_INDEX="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakevec", "run", "--path", str(root), "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 300  # a busy machine imports slowly; a start that fails ends sooner
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).raise_for_status()
            return proc, port
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stdout.read().decode()) from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    proc, port = _start(
        root, "--auth-token", TOKEN, "--allow-reset", "--max-body-mb", "4", "--max-batch-size", "5000"
    )
    yield root, port
    proc.terminate()
    proc.wait(timeout=30)


def _client(port: int, **kwargs):
    return chromadb.HttpClient(
        host="127.0.0.1", port=port, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs
    )


def _lakevec_client(port: int, **kwargs):
    return lakevec.HttpClient(host="127.0.0.1", port=port, headers={"X-Chroma-Token": TOKEN}, **kwargs)


# the official client and lakevec's own, each with the module its exception classes come from
CLIENTS = [
    pytest.param((_client, chromadb.errors), id="chromadb"),
    pytest.param((_lakevec_client, lakevec.errors), id="lakevec"),
]


@pytest.mark.parametrize("kind", CLIENTS)
def test_full_flow(server, kind):
    root, port = server
    make, _ = kind
    client = make(port)
    assert client.heartbeat() > 0
    col = client.create_collection("flow", embedding_function=None, metadata={"owner": "tests"})
    rng = np.random.default_rng(0)
    emb = rng.random((50, 8)).astype(np.float32)
    col.add(
        ids=[f"id{i}" for i in range(50)],
        embeddings=emb,
        metadatas=[{"i": i, "even": i % 2 == 0, "tag": f"t{i % 5}"} for i in range(50)],
        documents=[f"document {i}" for i in range(50)],
    )
    assert col.count() == 50
    got = col.get(ids=["id3", "id7"], include=["embeddings", "metadatas", "documents"])
    assert got["ids"] == ["id3", "id7"] and got["documents"] == ["document 3", "document 7"]
    np.testing.assert_allclose(np.asarray(got["embeddings"]), emb[[3, 7]], rtol=1e-6)
    assert got["metadatas"][0] == {"i": 3, "even": False, "tag": "t3"}

    q = rng.random((2, 8)).astype(np.float32)
    res = col.query(query_embeddings=q, n_results=5, where={"even": True}, include=["distances", "metadatas"])
    d = ((emb[None, ::2, :] - q[:, None, :]) ** 2).sum(-1)
    expect = [[f"id{2 * j}" for j in np.argsort(row)[:5]] for row in d]
    assert res["ids"] == expect
    np.testing.assert_allclose(res["distances"], np.sort(d, axis=1)[:, :5], rtol=1e-4)

    col.update(ids=["id1"], metadatas=[{"i": 100}])
    col.upsert(ids=["id1", "new"], embeddings=rng.random((2, 8)), documents=["one", "new one"])
    assert col.get(ids=["id1"])["metadatas"] == [{"i": 100, "even": False, "tag": "t1"}]  # merged
    assert col.get(where_document={"$contains": "new one"})["ids"] == ["new"]
    col.delete(where={"tag": "t4"})
    assert col.count() == 51 - 10
    assert col.delete(where={"tag": "t3"}, limit=2)["deleted"] == 2  # the first two: id3, id8
    assert col.get(ids=["id3", "id8", "id13"])["ids"] == ["id13"]
    col.add(ids=["id3", "id8"], embeddings=emb[[3, 8]], metadatas=[{"tag": "t3"}] * 2)
    col.modify(name="flow2", metadata={"owner": "renamed"})
    assert [c.name for c in client.list_collections()] == ["flow2"]
    assert client.count_collections() == 1

    # the server's writes are plain commits: a direct client of the same root sees them
    direct = lakevec.PersistentClient(str(root)).get_collection("flow2", embedding_function=None)
    assert direct.count() == 41 and direct.get(ids=["new"])["documents"] == ["new one"]
    client.delete_collection("flow2")
    assert client.count_collections() == 0


def test_schema_round_trips_through_the_official_client(server):
    """Chroma 1.5's Schema: given at creation, its vector index joins the configuration, and
    get_collection reports it back with the configuration's values."""
    from chromadb.api.types import Schema, StringInvertedIndexConfig, VectorIndexConfig

    _, port = server
    client = _client(port)
    schema = Schema()
    schema.create_index(config=VectorIndexConfig(space="cosine", hnsw={"ef_construction": 150}), key=None)
    schema.delete_index(config=StringInvertedIndexConfig(), key="title")
    client.create_collection("schematic", schema=schema, embedding_function=None)
    got = client.get_collection("schematic", embedding_function=None)
    assert got.configuration["hnsw"]["space"] == "cosine"
    assert got.configuration["hnsw"]["ef_construction"] == 150
    vector = got.schema.keys["#embedding"].float_list.vector_index.config
    assert vector.space == "cosine" and vector.hnsw.ef_construction == 150
    assert got.schema.keys["title"].string.string_inverted_index.enabled is False
    assert got.schema.defaults.int_value.int_inverted_index.enabled is True
    ours = _lakevec_client(port).get_collection("schematic", embedding_function=None)
    assert ours.schema["keys"]["title"] == {
        "string": {"string_inverted_index": {"enabled": False, "config": {}}}
    }
    client.delete_collection("schematic")
    # lakevec's own client sends the same schema
    made = _lakevec_client(port).create_collection("schematic2", schema=schema, embedding_function=None)
    assert made.configuration["hnsw"]["space"] == "cosine"
    assert made.configuration["hnsw"]["ef_construction"] == 150
    assert client.get_collection("schematic2", embedding_function=None).schema.keys["title"] is not None
    client.delete_collection("schematic2")


def test_get_or_create_racing_deletes_answers(server):
    """Chroma's test_multithreaded_get_or_create: a get_or_create that found the collection
    answers even when another thread deletes it before the answer is built."""
    from concurrent.futures import ThreadPoolExecutor

    _, port = server
    client = _client(port)

    def work(i: int) -> None:
        assert client.get_or_create_collection("racing", embedding_function=None).name == "racing"
        if i % 2 == 0:
            try:
                client.delete_collection("racing")
            except chromadb.errors.NotFoundError:
                pass

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(work, i) for i in range(48)]:
            future.result()
    # whether a get_or_create came after the last delete is up to the threads: leave the
    # default database as the tests after this one expect it
    if "racing" in [c.name for c in client.list_collections()]:
        client.delete_collection("racing")


@pytest.mark.parametrize("kind", CLIENTS)
def test_errors_come_back_as_chromas_classes(server, kind):
    _, port = server
    make, errors = kind
    client = make(port)
    col = client.get_or_create_collection("errs", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1.0, 2.0]])
    with pytest.raises(errors.NotFoundError):
        client.get_collection("missing", embedding_function=None)
    with pytest.raises(errors.InternalError):
        client.create_collection("errs", embedding_function=None)
    with pytest.raises((errors.InvalidArgumentError, ValueError)):
        col.add(ids=["b"], embeddings=[[1.0, 2.0, 3.0]])  # wrong dimension
    with pytest.raises((errors.InvalidArgumentError, ValueError)):
        col.get(where={"x": {"$regex_nope": 1}})
    with pytest.raises(errors.DuplicateIDError):
        col.add(ids=["c", "c"], embeddings=[[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(errors.InvalidArgumentError):
        client.create_collection("../../etc", embedding_function=None)
    assert col.count() == 1  # nothing of the failed calls landed
    client.delete_collection("errs")


def test_tenants_and_databases_are_isolated(server):
    _, port = server
    admin = chromadb.AdminClient(
        Settings(
            chroma_api_impl="chromadb.api.fastapi.FastAPI",
            chroma_server_host="127.0.0.1",
            chroma_server_http_port=port,
            chroma_client_auth_provider="chromadb.auth.token_authn.TokenAuthClientProvider",
            chroma_client_auth_credentials=TOKEN,
        )
    )
    admin.create_tenant("acme")
    admin.create_database("prod", tenant="acme")
    admin.create_database("dev", tenant="acme")
    prod = _client(port, tenant="acme", database="prod")
    dev = _client(port, tenant="acme", database="dev")
    prod.create_collection("docs", embedding_function=None).add(ids=["p"], embeddings=[[1.0]])
    dev.create_collection("docs", embedding_function=None).add(ids=["d1", "d2"], embeddings=[[1.0], [2.0]])
    assert prod.get_collection("docs", embedding_function=None).get()["ids"] == ["p"]
    assert dev.get_collection("docs", embedding_function=None).count() == 2
    assert _client(port).count_collections() == 0  # the default database sees neither
    root = server[0]
    for db in ("prod", "dev"):  # each database's files sit under its own prefix of the root
        assert list((root / "tenants" / "acme" / "databases" / db / "collections").glob("*/versions/*.json"))
    for bad in ("../x", "a/b", "..", "x" * 200, "a..b"):
        with pytest.raises(chromadb.errors.InvalidArgumentError):
            admin.create_tenant(bad)
        with pytest.raises(chromadb.errors.InvalidArgumentError):
            admin.create_database(bad, tenant="acme")
    with pytest.raises(chromadb.errors.ChromaError):
        _client(port, tenant="acme", database="missing")


def test_auth_is_required_and_checked(server):
    _, port = server
    base = f"http://127.0.0.1:{port}/api/v2"
    assert httpx.get(base + "/heartbeat").status_code == 200  # liveness stays public
    r = httpx.get(base + "/tenants/default_tenant")
    assert r.status_code == 401 and r.json()["error"] == "AuthError"
    r = httpx.get(base + "/tenants/default_tenant", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and r.json()["error"] == "AuthorizationError"
    assert httpx.get(base + "/tenants/default_tenant", headers={"X-Chroma-Token": TOKEN}).status_code == 200
    with pytest.raises(chromadb.errors.ChromaAuthError):
        chromadb.HttpClient(host="127.0.0.1", port=port).list_collections()
    with pytest.raises(chromadb.errors.AuthorizationError):
        chromadb.HttpClient(host="127.0.0.1", port=port, headers={"X-Chroma-Token": "x"}).list_collections()
    with pytest.raises(lakevec.errors.AuthorizationError):
        lakevec.HttpClient(host="127.0.0.1", port=port, headers={"X-Chroma-Token": "x"})


def test_malformed_requests_get_4xx_and_the_server_keeps_serving(server):
    _, port = server
    client = _client(port)
    col = client.get_or_create_collection("robust", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1.0, 2.0]])
    url = f"http://127.0.0.1:{port}/api/v2/tenants/default_tenant/databases/default_database/collections/{col.id}"
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    bad = [
        ("post", "/add", b"{not json"),
        ("post", "/add", b"[1, 2, 3]"),
        ("post", "/add", b'{"ids": "a", "embeddings": "zz"}'),
        ("post", "/add", b'{"ids": [1], "embeddings": [[1, 2]]}'),
        ("post", "/add", b'{"ids": ["x"], "embeddings": [["a", "b"]]}'),
        ("post", "/add", b'{"ids": ["x"], "embeddings": ["!!notbase64"]}'),
        ("post", "/query", b'{"query_embeddings": [[1, 2]], "n_results": -1}'),
        ("post", "/query", b'{"query_embeddings": [[1, 2]], "n_results": "ten"}'),
        ("post", "/query", b'{"query_embeddings": [[1, 2]], "n_results": 100000000}'),
        ("post", "/get", b'{"where": {"$and": [{"a": 1}]}}'),
        ("post", "/get", b'{"where_sql": "1=1; DROP TABLE x"}'),
        ("post", "/get", b'{"where_sql": "id IN (SELECT * FROM read_csv(\'/etc/passwd\'))"}'),
        ("post", "/get", b'{"limit": "many"}'),
        ("post", "/delete", b"{}"),
        ("post", "/add", b'{"ids": [' + b",".join(b'"%d"' % i for i in range(6000)) + b"]}"),
    ]
    for method, path, body in bad:
        r = httpx.request(method, url + path, content=body, headers=h)
        assert 400 <= r.status_code < 500, (path, body[:80], r.status_code, r.text)
        assert "error" in r.json()
    big = httpx.post(url + "/add", content=b"{" + b" " * (5 << 20) + b"}", headers=h)
    assert big.status_code == 413
    assert col.count() == 1 and client.heartbeat() > 0


def test_several_client_processes_write_at_once(server, tmp_path):
    _, port = server
    client = _client(port)
    client.get_or_create_collection("shared", embedding_function=None)
    script = tmp_path / "writer.py"
    script.write_text(
        "import sys, numpy as np, chromadb\n"
        "w, port, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
        "c = chromadb.HttpClient(host='127.0.0.1', port=port, headers={'Authorization': 'Bearer ' + token})\n"
        "col = c.get_collection('shared', embedding_function=None)\n"
        "rng = np.random.default_rng(w)\n"
        "for b in range(10):\n"
        "    ids = [f'w{w}-b{b}-{i}' for i in range(50)]\n"
        "    col.add(ids=ids, embeddings=rng.random((50, 4)))\n"
        "    col.upsert(ids=ids[:5], embeddings=rng.random((5, 4)), metadatas=[{'w': w}] * 5)\n"
        "    col.delete(ids=ids[45:])\n"
    )
    procs = [subprocess.Popen([sys.executable, str(script), str(w), str(port), TOKEN]) for w in range(4)]
    assert [p.wait(timeout=900) for p in procs] == [0, 0, 0, 0]
    col = client.get_collection("shared", embedding_function=None)
    assert col.count() == 4 * 10 * 45
    assert len(col.get(where={"w": {"$gte": 0}})["ids"]) == 4 * 10 * 5


def test_reset_only_when_allowed(server, tmp_path):
    _, port = server
    assert _client(port).reset() is True
    proc, other = _start(tmp_path / "noreset", "--auth-token", TOKEN)
    try:
        r = httpx.post(f"http://127.0.0.1:{other}/api/v2/reset", headers={"X-Chroma-Token": TOKEN})
        assert r.status_code == 403 and r.json()["error"] == "AuthorizationError"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_several_worker_processes_serve_one_root(tmp_path):
    proc, port = _start(tmp_path / "workers", "--workers", "2")
    try:
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        col = client.create_collection("multi", embedding_function=None)
        for b in range(6):  # requests land on either process; commits meet in the protocol
            col.add(ids=[f"b{b}-{i}" for i in range(10)], embeddings=np.full((10, 3), b, dtype=np.float32))
        assert col.count() == 60
        assert len(client.get_collection("multi", embedding_function=None).get()["ids"]) == 60
    finally:
        proc.terminate()
        proc.wait(timeout=30)
