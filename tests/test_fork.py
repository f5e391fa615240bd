"""Forks share their source's files and never see each other's later writes; tags keep versions
through vacuum. On local files, memory and S3, and through both HTTP clients."""

from __future__ import annotations

import gc
from datetime import timedelta

import numpy as np
import pytest

import lakevec
from lakevec.errors import InternalError, InvalidArgumentError, NotFoundError, UniqueConstraintError
from lakevec.lake.manifest import FILE_DIRS

DIM = 8


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, DIM), dtype=np.float32)


def _fill(col, n: int = 120, prefix: str = "a", seed: int = 0) -> None:
    col.add(
        ids=[f"{prefix}{i}" for i in range(n)],
        embeddings=_vectors(n, seed),
        documents=[f"document {prefix} {i}" for i in range(n)],
        metadatas=[{"i": i, "even": i % 2 == 0} for i in range(n)],
    )


def _state(col) -> dict:
    got = col.get(include=["embeddings", "metadatas", "documents"])
    order = np.argsort(got["ids"])
    return {
        "ids": [got["ids"][i] for i in order],
        "metadatas": [got["metadatas"][i] for i in order],
        "documents": [got["documents"][i] for i in order],
        "embeddings": np.asarray(got["embeddings"])[order],
    }


def _same(a: dict, b: dict) -> None:
    assert a["ids"] == b["ids"] and a["metadatas"] == b["metadatas"] and a["documents"] == b["documents"]
    np.testing.assert_array_equal(a["embeddings"], b["embeddings"])


def _files(col) -> set[str]:
    engine = col._engine
    return {
        f"{sub}/{n}"
        for sub in FILE_DIRS
        for n, _, _ in engine.storage.list_files(f"{engine.directory}/{sub}")
    }


def test_a_fork_holds_the_rows_and_copies_no_file(client):
    src = client.create_collection("src", embedding_function=None, metadata={"team": "x"})
    _fill(src)
    src.delete(ids=["a3"])
    src.wait_for_index()
    fork = src.fork("copy")
    assert fork.name == "copy" and fork.id != src.id and fork.metadata == {"team": "x"}
    assert fork.configuration == src.configuration
    _same(_state(fork), _state(src))
    assert _files(fork) == set()  # every file it reads is its source's
    assert fork._engine.snapshot().manifest.files() == {
        f"../{src._engine.directory.rsplit('/', 1)[1]}/{p}" for p in src._engine.snapshot().manifest.files()
    }
    q = _vectors(3, 9)
    assert (
        fork.query(query_embeddings=q, n_results=5)["ids"]
        == src.query(query_embeddings=q, n_results=5)["ids"]
    )
    assert src.fork_count() == 1 and fork.fork_count() == 0
    assert {c.name for c in client.list_collections()} == {"src", "copy"}
    reopened = lakevec.PersistentClient(client._storage.url).get_collection("copy", embedding_function=None)
    _same(_state(reopened), _state(src))


def test_writes_after_a_fork_stay_on_their_side(client):
    src = client.create_collection("src", embedding_function=None)
    _fill(src)
    fork = src.fork("copy")
    before = _state(src)
    fork.add(ids=["f-new"], embeddings=_vectors(1, 3))
    fork.upsert(ids=["a1"], embeddings=_vectors(1, 4), metadatas=[{"i": -1}])
    fork.delete(ids=["a2"])
    _same(_state(src), before)
    src.delete(ids=["a5"])
    src.update(ids=["a6"], metadatas=[{"i": 600}])
    got = fork.get(ids=["a1", "a2", "a5", "a6", "f-new"], include=["metadatas"])
    assert sorted(got["ids"]) == ["a1", "a5", "a6", "f-new"]
    assert dict(zip(got["ids"], got["metadatas"]))["a6"]["i"] == 6
    assert dict(zip(got["ids"], got["metadatas"]))["a1"] == {"i": -1, "even": False}
    assert src.count() == 119 and fork.count() == 120
    fork.compact()  # rewrites into the fork's own directory, deletes nothing of the source
    assert src.count() == 119 and fork.count() == 120
    assert _files(fork) and all(not p.startswith("..") for p in fork._engine.snapshot().manifest.files())


def test_vacuum_keeps_what_forks_read_and_deleting_the_source_keeps_the_fork(client):
    src = client.create_collection("src", embedding_function=None)
    _fill(src)
    fork = src.fork("copy")
    grandchild = fork.fork("copy2")
    expected = _state(fork)
    _fill(src, prefix="b", seed=1)
    src.delete(ids=[f"a{i}" for i in range(60)])
    src.compact()
    src.vacuum(older_than=timedelta(0))
    _same(_state(fork), expected)
    _same(_state(grandchild), expected)
    assert src.count() == 180 and fork.fork_count() == 1 and src.fork_count() == 1

    client.delete_collection("src")
    with pytest.raises(NotFoundError):
        client.get_collection("src")
    _same(_state(fork), expected)
    _same(_state(lakevec.PersistentClient(client._storage.url).get_collection("copy2")), expected)
    source_dir = src._engine.directory
    storage = src._engine.storage
    assert storage.listdir(source_dir)  # the files the forks read stay

    fork.compact()
    client.delete_collection("copy")
    _same(_state(grandchild), expected)  # still reads the deleted source's first fragment
    client.delete_collection("copy2")
    assert storage.listdir(source_dir) == []  # the last reader gone: nothing is left behind
    assert client.list_collections() == []


def test_tags_keep_versions_through_vacuum(client):
    col = client.create_collection("tagged", embedding_function=None)
    _fill(col)
    first = _state(col)
    assert col.tag("v-one") == col.version
    col.delete(ids=[f"a{i}" for i in range(50)])
    col.upsert(ids=["a60"], embeddings=_vectors(1, 7))
    col.compact()
    col.vacuum(older_than=timedelta(0))
    assert col.tags() == {"v-one": 1}
    old = col.at(tag="v-one")
    _same(_state(old), first)
    assert old.count() == 120 and col.count() == 70
    with pytest.raises(UniqueConstraintError):
        col.tag("v-one")
    with pytest.raises(NotFoundError):
        col.at(tag="missing")
    with pytest.raises(InvalidArgumentError):
        col.tag("../x")
    with pytest.raises(InvalidArgumentError):
        col.at(version=1, tag="v-one")
    with pytest.raises(InvalidArgumentError):
        col.tag("future", version=col.version + 5)
    col.delete_tag("v-one")
    assert col.tags() == {}
    del old  # a read-only view alive in this process keeps its version too
    gc.collect()
    col.vacuum(older_than=timedelta(0))
    with pytest.raises(NotFoundError):
        col.at(version=1)


def test_a_fork_of_an_old_version_and_fork_errors(client):
    col = client.create_collection("src", embedding_function=None)
    _fill(col)
    first = _state(col)
    col.tag("start")
    col.delete(ids=["a1"])
    fork = col.at(tag="start").fork("from-start")
    _same(_state(fork), first)
    with pytest.raises(InternalError):
        col.fork("from-start")
    with pytest.raises(InvalidArgumentError):
        col.fork("x")
    assert {c.name for c in client.list_collections()} == {"src", "from-start"}


@pytest.mark.parametrize("kind", ["chromadb", "lakevec"])
def test_fork_over_http(served, kind):
    chromadb = pytest.importorskip("chromadb")
    make = chromadb.HttpClient if kind == "chromadb" else lakevec.HttpClient
    client = make(host="127.0.0.1", port=served)
    src = client.create_collection(f"fork-src-{kind}", embedding_function=None)
    _fill(src)
    fork = src.fork(f"fork-dst-{kind}")
    assert fork.count() == 120 and fork.name == f"fork-dst-{kind}"
    fork.delete(ids=["a0"])
    assert src.count() == 120 and fork.count() == 119
    assert src.fork_count() == 1
    assert client.get_collection(f"fork-dst-{kind}").count() == 119
