"""Every API test runs on a real local directory, on fsspec's memory:// and on S3 (moto's S3
server on 127.0.0.1, reached through s3fs exactly as a real bucket would be)."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
import threading
import uuid

import fsspec
import pytest

import lakevec

ROOTS = ["file", "memory", "s3"]
BUCKET = "lakevec-test"


@pytest.fixture(scope="module", autouse=True)
def _return_freed_memory():
    """After each test module, collect cycles and hand glibc's freed heap back to the OS: the
    embedding models (ours and Chroma's ONNX runner) and large test arrays free hundreds of MB
    that glibc otherwise keeps mapped, and one pytest process runs every module in turn."""
    yield
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # musl or another libc: nothing to trim
            pass


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 server on a free 127.0.0.1 port. Clients find it through the standard
    environment (AWS_ENDPOINT_URL and keys), so subprocesses and s3fs need no special code."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto checks If-None-Match and then stores the object, two steps that concurrent requests
    # can interleave; S3 does both atomically. Serialize moto's PUTs so the fake gives the
    # guarantee the real service gives (without this, two committers can both "win").
    from moto.s3.responses import S3Response

    original_put = S3Response.put_object
    put_lock = threading.Lock()

    def atomic_put(self):
        with put_lock:
            return original_put(self)

    S3Response.put_object = atomic_put
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAKEVEC_FILE_CACHE_DIR": str(tmp_path_factory.mktemp("file-cache")),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()
    S3Response.put_object = original_put


@pytest.fixture
def s3_requests(s3_server):
    """Every object request the S3 server answers during the test, from any process or client
    (Arrow's or s3fs): ``(method, "/bucket/key", Range header or None)``, in arrival order."""
    from urllib.parse import urlsplit

    from moto.s3.responses import S3Response

    seen: list[tuple[str, str, str | None]] = []
    original = S3Response.key_response

    def logged(self, request, full_url, headers):
        seen.append((request.method, urlsplit(full_url).path, request.headers.get("range")))
        return original(self, request, full_url, headers)

    S3Response.key_response = logged
    yield seen
    S3Response.key_response = original


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray cluster (2 CPUs, no dashboard, no telemetry, no token in ~/.ray) per test
    process, for every test that uses Ray: Ray Data hangs on a second ``ray.init`` after a
    ``ray.shutdown`` in one process. Started after moto, so its workers inherit the endpoint,
    and with the repository on their path, so they import ``tests`` and ``benchmarks``."""
    ray = pytest.importorskip("ray")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def make_root(kind: str, tmp_path, request=None) -> str:
    if kind == "file":
        return str(tmp_path / f"root-{uuid.uuid4().hex[:8]}")
    if kind == "s3":
        request.getfixturevalue("s3_server")
        return f"s3://{BUCKET}/root-{uuid.uuid4().hex[:12]}"
    return f"memory://lakevec-test-{uuid.uuid4().hex}"


@pytest.fixture(params=ROOTS)
def root(request, tmp_path):
    url = make_root(request.param, tmp_path, request)
    yield url
    if url.startswith("memory://"):
        fs = fsspec.filesystem("memory")
        if fs.exists(url):
            fs.rm(url, recursive=True)


@pytest.fixture
def client(root):
    return lakevec.PersistentClient(root)


@pytest.fixture
def collection(client):
    return client.create_collection("test", embedding_function=None)


def storage_state(collection) -> tuple[int, list[str]]:
    """The collection's head version and every file under it: equal before and after a failed call
    means nothing was written."""
    engine = collection._engine
    fs = engine.storage.fs
    files = sorted(fs.find(engine.directory)) if fs.exists(engine.directory) else []
    return engine.log.latest(), files


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A `lakevec run` process on 127.0.0.1 for one test module; its port."""
    pytest.importorskip("fastapi")
    from tests.test_server import _start

    proc, port = _start(tmp_path_factory.mktemp("served"))
    yield port
    proc.terminate()
    proc.wait(timeout=30)
