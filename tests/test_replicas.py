"""Two `lakevec run` replicas on one S3 root (moto on 127.0.0.1), as behind a load balancer:
what one writes the other reads once the consistency interval has passed, and writes through
both at once all land."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.conftest import BUCKET

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("fastapi")
from tests.test_server import _start  # noqa: E402

INTERVAL = 1.0  # the object-store default of consistency_interval (lakevec.lake.storage)


@pytest.fixture
def replicas(s3_server):
    root = f"s3://{BUCKET}/replicas-{uuid.uuid4().hex[:12]}"
    started = [_start(root), _start(root)]
    yield [port for _, port in started]
    for proc, _ in started:
        proc.terminate()
        proc.wait(timeout=30)


def _client(port: int):
    return chromadb.HttpClient(host="127.0.0.1", port=port)


def test_a_write_through_one_replica_is_read_through_the_other(replicas):
    one, other = (_client(port) for port in replicas)
    mine = one.create_collection("shared", embedding_function=None)
    theirs = other.get_collection("shared", embedding_function=None)
    assert theirs.count() == 0  # the other replica now holds version 0
    mine.add(ids=["a", "b"], embeddings=[[0.0, 1.0], [1.0, 0.0]], metadatas=[{"k": 1}, {"k": 2}])
    time.sleep(INTERVAL * 1.1)  # past the interval the other replica must look again
    assert theirs.count() == 2
    assert theirs.get(where={"k": 2})["ids"] == ["b"]
    theirs.delete(ids=["a"])
    time.sleep(INTERVAL * 1.1)
    assert mine.get()["ids"] == ["b"]


def test_writes_through_both_replicas_at_once_all_land(replicas):
    clients = [_client(port) for port in replicas]
    clients[0].create_collection("busy", embedding_function=None)

    def writer(w: int) -> None:
        rng = np.random.default_rng(w)
        collection = clients[w % 2].get_collection("busy", embedding_function=None)
        for batch in range(8):
            ids = [f"w{w}-b{batch}-{i}" for i in range(10)]
            collection.add(ids=ids, embeddings=rng.standard_normal((10, 8)).tolist())

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    time.sleep(INTERVAL * 1.1)
    for client in clients:
        collection = client.get_collection("busy", embedding_function=None)
        assert collection.count() == 320
        assert len(set(collection.get(include=[])["ids"])) == 320
