"""Route files (lake/route.py): a remote index searched by range before its copy arrives."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from usearch.index import Index

import lakevec
import lakevec.read.routed as routed_module
import lakevec.write.index as index_module
from lakevec.lake.route import Route, index_layout, route_path
from lakevec.write.index import index_route, insertion_order
from tests.conftest import make_root
from tests.test_query import clustered, distance_matrix


def _index(x: np.ndarray, keys: np.ndarray, parts: int = 2) -> Index:
    """An int8 index built in ``parts`` adds on two threads, saved and restored between adds
    (as folds extend an index)."""
    index = Index(ndim=x.shape[1], metric="l2sq", dtype="i8", connectivity=8)
    for a, b in zip(
        np.linspace(0, len(x), parts + 1, dtype=int)[:-1], np.linspace(0, len(x), parts + 1, dtype=int)[1:]
    ):
        index.add(keys[a:b], x[a:b], threads=2)
        index = Index.restore(index.save())
    return index


def test_layout_names_each_slot_key_and_row():
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, size=(3_000, 32), dtype=np.int8)
    keys = rng.permutation(100_000)[:3_000].astype(np.uint64)
    data = _index(x, keys).save()
    layout = index_layout(data)
    assert (layout.rows, layout.row_bytes) == (3_000, 32)
    assert sorted(layout.keys.tolist()) == sorted(keys.tolist())
    rows = np.frombuffer(data, np.int8, 3_000 * 32, layout.offset).reshape(3_000, 32)
    by_key = dict(zip(keys.tolist(), x))
    assert all((rows[s] == by_key[k]).all() for s, k in enumerate(layout.keys.tolist()))
    with pytest.raises(ValueError):
        index_layout(b"\x01\x00\x00\x00\x04\x00\x00\x00" + bytes(100))


def test_a_route_is_written_where_blocks_are_tight(monkeypatch):
    monkeypatch.setattr(index_module, "ROUTE_MIN_ROWS", 1_000)
    x = np.rint(np.clip(clustered(6_000, 64) * 60, -127, 127)).astype(np.int8)
    keys = np.arange(6_000, dtype=np.uint64)
    ordered = insertion_order(x, min_rows=0, cluster_rows=200)
    route = index_route(_index(x[ordered], keys[ordered]).save(), np.dtype(np.int8))
    assert route is not None and len(route.keys) == 6_000 and len(route.means) == -(-6_000 // route.block)
    again = Route.from_bytes(route.to_bytes())
    assert (again.keys == route.keys).all() and (again.means == route.means).all()
    shuffled = np.random.default_rng(1).permutation(6_000)  # row order: blocks hold any rows
    assert index_route(_index(x[shuffled], keys[shuffled]).save(), np.dtype(np.int8)) is None
    monkeypatch.setattr(index_module, "ROUTE_MIN_ROWS", 10_000)
    assert index_route(_index(x[ordered], keys[ordered]).save(), np.dtype(np.int8)) is None


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_a_cold_remote_query_reads_the_index_by_range(monkeypatch, request, tmp_path, space, s3_requests):
    """A fresh process on S3 answers from the route file and byte ranges of the index (never
    the whole file), with the exact rows and distances brute force finds; once the copy is in
    its cache, the real index serves."""
    monkeypatch.setattr(index_module, "ROUTE_MIN_ROWS", 2_000)
    monkeypatch.setattr(index_module, "ORDER_CLUSTER_ROWS", 200)
    monkeypatch.setattr(routed_module, "ROUTE_SHARE", 2 / 3)  # of the rows, per query
    monkeypatch.setattr(routed_module, "ROUTE_MAX_SHARE", 1.0)  # the batch below never waits
    root = make_root("s3", tmp_path, request)
    n, dim = 12_000, 128  # past the rows a query searches exactly (~7,800)
    x = clustered(n, dim, rank=6)
    col = lakevec.PersistentClient(root).create_collection(
        "routed", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=x)
    col.delete(ids=["r7"])
    col.wait_for_index()
    entry = col._engine.snapshot().manifest.fragments[0]
    assert entry.index_route == route_path(entry.index)

    cold = lakevec.PersistentClient(root, cache_dir=str(tmp_path / "cold-cache")).get_collection(
        "routed", embedding_function=None
    )
    engine = cold._engine
    s3_requests.clear()
    queries = clustered(30, dim, seed=5, rank=6)
    got = cold.query(query_embeddings=queries, n_results=10, include=["distances"])
    gets = [(path, taken) for method, path, taken in s3_requests if method == "GET"]
    assert engine.indexes.routed(entry.index)  # the answer came through the route
    # the index by range: rows of some blocks (the copy, begun once the answer was out,
    # reads from byte 0 in 16 MB ranges)
    index_gets = [r for url, r in gets if url.endswith(".usearch")]
    assert index_gets and all(r is not None for r in index_gets), index_gets
    ranges = [tuple(int(v) for v in r.split("=")[1].split("-")) for r in index_gets]
    routed = [(a, b) for a, b in ranges if a > 0]
    assert routed and sum(b - a + 1 for a, b in routed) < 12_000 * dim
    assert any(url.endswith(".route.npz") for url, _ in gets)

    d = distance_matrix(space, queries, x)
    d[:, 7] = np.inf
    truth = np.argsort(d, axis=1)[:, :10]
    recall = np.mean([len({f"r{i}" for i in t} & set(r)) / 10 for t, r in zip(truth, got["ids"])])
    assert recall >= 0.95, recall
    for q, (ids, dist) in enumerate(zip(got["ids"], got["distances"])):
        rows = [int(i[1:]) for i in ids]
        np.testing.assert_allclose(dist, d[q, rows], rtol=1e-3, atol=1e-3)

    full = engine.cache.path(entry.index)
    deadline = time.monotonic() + 120
    while not engine.storage.is_cached(full) and time.monotonic() < deadline:
        time.sleep(0.05)  # the copy starts once the first answer is out
    again = cold.query(query_embeddings=queries, n_results=10)
    assert not engine.indexes.routed(entry.index)
    assert np.mean([len({f"r{i}" for i in t} & set(r)) / 10 for t, r in zip(truth, again["ids"])]) >= 0.95


def test_a_fold_retires_the_route_of_the_index_it_extends(monkeypatch, tmp_path):
    monkeypatch.setattr(index_module, "ROUTE_MIN_ROWS", 1_000)
    monkeypatch.setattr(index_module, "ORDER_CLUSTER_ROWS", 200)
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("folds", embedding_function=None)
    x = clustered(9_000, 64)
    for a in range(0, 9_000, 4_500):
        col.add(ids=[f"r{i}" for i in range(a, a + 4_500)], embeddings=x[a : a + 4_500])
        col.wait_for_index()
    manifest = col._engine.snapshot().manifest
    routes = {e.index_route for e in manifest.fragments}
    assert len(routes) == 1 and None not in routes
    index_dir = tmp_path / "collections" / col._engine.collection_id / "index"
    assert sorted(p.name for p in index_dir.iterdir() if not p.name.endswith(".terms.npz")) == sorted(
        p.rsplit("/", 1)[1] for p in manifest.files() if p.startswith("index/") and "terms" not in p
    )


@pytest.mark.parametrize("n,threads", [(0, 2), (1, 2), (10, 3), (16_384, 2), (1_000, 1), (7, 0)])
def test_striped_deals_each_thread_every_nth_row(n, threads):
    """usearch gives each thread a contiguous slice of an add call: striped hands thread t the
    rows order[t::threads], so the threads insert the order's neighbours side by side."""
    order = np.random.default_rng(n).permutation(n)
    dealt = index_module.striped(order, threads)
    assert sorted(dealt.tolist()) == sorted(order.tolist())
    used = threads or os.cpu_count() or 1
    if used > 1 and n > used:
        share = -(-n // used)  # usearch's slice per thread
        assert (dealt[:share] == order[0::used][:share]).all()
