"""S3-specific behaviour, on moto's S3 server: direct reads of the fragments by DuckDB and Polars,
the local cache (counted in HTTP requests), and refusing an endpoint without conditional writes."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401
import pytest

import lakevec
from lakevec.errors import StorageError
from tests.conftest import BUCKET, make_root


@pytest.fixture
def s3_root(request, tmp_path):
    return make_root("s3", tmp_path, request)


def _fill(root: str, n: int = 3000, dim: int = 8):
    col = lakevec.PersistentClient(root).create_collection("docs", embedding_function=None)
    rng = np.random.default_rng(0)
    col.add(
        ids=[f"id{i}" for i in range(n)],
        embeddings=rng.random((n, dim), dtype=np.float32),
        documents=[f"document {i}" for i in range(n)],
        metadatas=[{"group": i % 7, "name": f"n{i}"} for i in range(n)],
    )
    col.delete(ids=[f"id{i}" for i in range(0, n, 10)])
    return col


def test_fragments_read_by_duckdb_and_polars_without_lakevec(s3_root, s3_server):
    import duckdb
    import polars as pl
    import s3fs

    col = _fill(s3_root)
    col._indexer.stop()
    expected = col.to_arrow(include=["documents", "metadatas"]).sort_by("id")
    manifest = col._engine.snapshot().manifest
    directory = col._engine.directory
    fs = s3fs.S3FileSystem()  # endpoint and keys from the standard environment
    paths = [f"s3://{directory}/{f.path}" for f in manifest.fragments]
    dead = {f.path for f in manifest.fragments if f.deletes}
    assert dead  # the deletes above left a deletion file

    con = duckdb.connect()
    con.register_filesystem(fs)
    rows = con.sql(
        f"SELECT id, document, metadata.group AS grp FROM read_parquet({paths!r}) ORDER BY id"
    ).to_arrow_table()
    # without lakevec's deletion files the dead rows are still in the fragments
    live_ids = set(expected.column("id").to_pylist())
    assert live_ids < set(rows.column("id").to_pylist())
    live_rows = rows.filter(pa.compute.is_in(rows.column("id"), pa.array(sorted(live_ids))))
    assert live_rows.column("id").to_pylist() == expected.column("id").to_pylist()
    assert live_rows.column("document").to_pylist() == expected.column("document").to_pylist()
    assert live_rows.column("grp").to_pylist() == expected.column("group").to_pylist()

    storage_options = {
        "aws_endpoint_url": s3_server,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }
    frame = pl.concat([pl.read_parquet(p, storage_options=storage_options) for p in paths])
    live = frame.filter(pl.col("id").is_in(list(live_ids))).sort("id")
    assert live["id"].to_list() == expected.column("id").to_pylist()
    assert live["document"].to_list() == expected.column("document").to_pylist()
    assert live["metadata"].struct.field("group").to_list() == expected.column("group").to_pylist()


COLD_QUERY = """
import json, sys, time
import numpy as np
import lakevec
from lakevec.lake import columns

def step(**out):  # tell the parent (which reads the S3 server's request log), then go on
    print(json.dumps(out), flush=True)
    sys.stdin.readline()

columns.TAIL_BYTES = 4096  # the test's fragments are small: read their tails alone
col = lakevec.PersistentClient(sys.argv[1]).get_collection("docs", embedding_function=None)
step(stage="open")
q = np.random.default_rng(1).random((1, 8), dtype=np.float32)
first = col.query(query_embeddings=q, n_results=5)
step(stage="first", ids=first["ids"])
engine = col._engine
# the fragments download in the background once the first query answered: wait for them
# however long it takes (the subprocess timeout bounds a hang)
while any(f.ranged is not None for f in engine.snapshot().fragments):
    time.sleep(0.05)
step(stage="copied")
col.query(query_embeddings=q, n_results=5, where={"group": {"$gte": 2}})
step(stage="second", misses=engine.storage.cache.misses)
"""


def _cold_process(root: str, env: dict, requests: list) -> tuple[dict, list[int]]:
    """Run COLD_QUERY in a fresh process: what it printed at each step, and how many requests
    the S3 server had answered by then. Its stderr goes to a file (a pipe nobody reads could
    fill and stall it), and a hung process is killed after 600 s."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", COLD_QUERY, root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
        watchdog = threading.Timer(600, proc.kill)
        watchdog.start()

        def tail() -> str:
            errors.seek(0)
            return errors.read()[-3000:]

        out, marks = {}, []
        try:
            for _ in range(4):
                line = proc.stdout.readline()
                assert line, tail()
                step = json.loads(line)
                out[step["stage"]] = step
                marks.append(len(requests))
                proc.stdin.write("\n")
                proc.stdin.flush()
            assert proc.wait(timeout=600) == 0, tail()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
    return out, marks


def test_cold_process_queries_then_serves_from_cache(s3_root, tmp_path, s3_requests):
    col = _fill(s3_root, n=12_000)  # past the rows a query searches exactly (~7,800)
    col.wait_for_index()
    expected = col.query(
        query_embeddings=np.random.default_rng(1).random((1, 8), dtype=np.float32), n_results=5
    )
    env = dict(os.environ, LAKEVEC_FILE_CACHE_DIR=str(tmp_path / "cold-cache"))
    got, marks = _cold_process(s3_root, env, s3_requests)
    assert got["first"]["ids"] == expected["ids"]
    assert got["second"]["misses"] > 0
    first = s3_requests[marks[0] : marks[1]]
    assert first
    # the first answer read the index and, of the fragments, byte ranges only: no data file
    # was copied before it (the copies are made after it)
    data_gets = [
        (taken or "").removeprefix("bytes=")
        for method, path, taken in first
        if method == "GET" and path.endswith(".parquet")
    ]
    assert data_gets and all(r and not r.startswith("0-") for r in data_gets), data_gets
    # candidates' vectors came by row: 8 float32 values a range
    assert any(int(r.split("-")[1]) - int(r.split("-")[0]) + 1 == 32 for r in data_gets)
    assert any("/index/" in path for _, path, _ in first)
    # a second query needs at most the freshness probe of the manifest log: one request
    assert marks[3] - marks[2] <= 1, s3_requests[marks[2] : marks[3]]
    # a second cold process sharing the cache directory downloads no data file again
    again, _ = _cold_process(s3_root, env, s3_requests)
    assert again["second"]["misses"] == 0


class _StripConditions(BaseHTTPRequestHandler):
    """A pass-through proxy to the S3 server that drops If-None-Match: an endpoint that
    ignores conditional writes, as some S3-compatible stores do."""

    upstream = ""
    protocol_version = "HTTP/1.1"  # answers Expect: 100-continue, as botocore's PUTs ask

    def _forward(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        drop = ("if-none-match", "host", "transfer-encoding", "content-length", "expect")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in drop}
        headers["Content-Length"] = str(len(body))
        host = self.upstream.split("//", 1)[1]
        conn = http.client.HTTPConnection(host, timeout=30)
        headers["Host"] = host
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        # a HEAD's answer has no body but the object's length
        length = resp.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def log_message(self, *args):
        pass


def test_endpoint_without_conditional_writes_is_refused(s3_server):
    _StripConditions.upstream = s3_server
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _StripConditions)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        options = {"endpoint_url": f"http://127.0.0.1:{proxy.server_address[1]}"}
        root = f"s3://{BUCKET}/no-conditions-{os.getpid()}"
        with pytest.raises(StorageError, match="single_writer=True"):
            lakevec.PersistentClient(root, storage_options=options).create_collection("docs")
        # nothing was committed: the same root through the real endpoint is empty
        assert lakevec.PersistentClient(root).list_collections() == []
        # the explicit single-writer mode works on that endpoint
        client = lakevec.PersistentClient(root, storage_options=options, single_writer=True)
        col = client.create_collection("docs", embedding_function=None)
        col.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
        assert lakevec.PersistentClient(root).get_collection("docs").count() == 2
    finally:
        proxy.shutdown()


def test_cache_is_bounded_and_evicts_least_recent(tmp_path):
    from lakevec.lake.cache import FileCache

    cache = FileCache(tmp_path / "c", max_bytes=2500)

    def writer(payload: bytes):
        return lambda tmp: Path(tmp).write_bytes(payload)

    first = cache.get("s3://b/one", writer(b"1" * 1000))
    cache.get("s3://b/two", writer(b"2" * 1000))
    os.utime(first, (1, 1))  # the oldest
    cache.get("s3://b/three", writer(b"3" * 1000))
    assert not Path(first).exists() and cache.size() <= 2500
    assert Path(cache.get("s3://b/three", writer(b"x"))).read_bytes() == b"3" * 1000  # a hit
    assert cache.hits == 1 and cache.misses == 3


def test_reads_go_through_arrow_and_fall_back_to_s3fs(s3_root, s3_server, monkeypatch):
    """An s3:// root reads through Arrow's client (s3fs is not even made for a read); an option
    Arrow has no counterpart for, or an Arrow read that fails, puts the reads on s3fs."""
    from lakevec.lake.s3reads import ArrowReads
    from lakevec.lake.storage import Storage

    col = _fill(s3_root, n=200)
    expected = col.get(ids=["id1", "id5"])["documents"]

    storage = Storage(s3_root)
    path = storage.join("catalog", "_latest")
    assert storage._arrow is not None
    data = storage.read_bytes(path)
    assert storage._fs is None  # no s3fs for reads
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(storage.join("catalog", "no-such-file"))

    # an s3fs option Arrow lacks: s3fs reads, the same bytes
    other = Storage(s3_root, {"config_kwargs": {"max_pool_connections": 4}})
    assert other._arrow is None and other.read_bytes(path) == data

    def failing(self, *args):
        raise OSError("injected: a region redirect, say")

    monkeypatch.setattr(ArrowReads, "read_ranges", failing)
    falling = Storage(s3_root)
    assert falling.read_ranges([path], [0], [len(data)]) == [data]
    assert falling._arrow is None  # from now on through s3fs

    monkeypatch.setenv("LAKEVEC_ARROW_S3", "0")
    assert Storage(s3_root)._arrow is None
    client = lakevec.PersistentClient(s3_root)
    assert (
        client.get_collection("docs", embedding_function=None).get(ids=["id1", "id5"])["documents"]
        == expected
    )


def test_a_batch_of_ranges_opens_each_file_once(s3_root, s3_server, s3_requests):
    """Arrow opens a file with a HEAD request: a batch of ranges of one file sends one."""
    from lakevec.lake.storage import Storage

    _fill(s3_root, n=200)
    storage = Storage(s3_root)
    path = storage.join("catalog", "_latest")
    data = storage.read_bytes(path)
    fresh = Storage(s3_root)  # its own handles
    s3_requests.clear()
    parts = fresh.read_ranges([path] * 40, [0] * 40, [len(data)] * 40)
    assert parts == [data] * 40
    assert [m for m, _, _ in s3_requests].count("HEAD") == 1
    assert [m for m, _, _ in s3_requests].count("GET") == 40
