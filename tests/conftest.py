"""Every API test runs on a real local directory and on fsspec's memory://."""

from __future__ import annotations

import uuid

import fsspec
import pytest

import lakevec

ROOTS = ["file", "memory"]


def make_root(kind: str, tmp_path) -> str:
    if kind == "file":
        return str(tmp_path / f"root-{uuid.uuid4().hex[:8]}")
    return f"memory://lakevec-test-{uuid.uuid4().hex}"


@pytest.fixture(params=ROOTS)
def root(request, tmp_path):
    url = make_root(request.param, tmp_path)
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
