"""Vector query against exact brute force over the Python-evaluated filter."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lakevec
import lakevec.read.search as search_module
from lakevec.errors import InvalidArgumentError
from tests import strategies as s
from tests.oracle import match_where


def brute_force(space, queries, vectors, k):
    q = np.asarray(queries, dtype=np.float64)
    x = np.asarray(vectors, dtype=np.float64)
    if space == "l2":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    elif space == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - qn @ xn.T
    else:
        d = 1 - q @ x.T
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


def distance_matrix(space, queries, vectors):
    """(nq, n) float64 distances by matrix products: brute_force's broadcast is nq x n x dim."""
    q, x = np.asarray(queries, dtype=np.float64), np.asarray(vectors, dtype=np.float64)
    if space == "l2":
        return (q**2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2 * q @ x.T
    if space == "cosine":
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        return 1 - qn @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
    return 1 - q @ x.T


def clustered(n, dim, seed=0, rank=8):
    """Embedding-like data: clusters in a low-dimensional latent space, projected up, plus noise
    (isotropic noise in all dimensions is structureless; no ANN index helps there)."""
    rng = np.random.default_rng(seed)
    project = np.random.default_rng(99).standard_normal((rank, dim)) / np.sqrt(rank)
    centers = np.random.default_rng(98).standard_normal((32, rank)) * 1.5
    latent = centers[rng.integers(0, 32, n)] + rng.standard_normal((n, rank))
    return (latent @ project + 0.05 * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_exact_path_matches_brute_force(client, space):
    col = client.create_collection(
        f"q-{space}", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    col._engine.on_commit.clear()
    x = clustered(600, 8)
    metas = [{"i": i, "cat": ["red", "blue", "green"][i % 3]} for i in range(600)]
    for start in range(0, 600, 150):  # several fragments
        col.add(
            ids=[f"r{i}" for i in range(start, start + 150)],
            embeddings=x[start : start + 150],
            metadatas=metas[start : start + 150],
        )
    queries = clustered(5, 8, seed=1)
    res = col.query(
        query_embeddings=queries,
        n_results=7,
        where={"cat": {"$ne": "blue"}},
        include=["distances", "metadatas"],
    )
    keep = np.array([m["cat"] != "blue" for m in metas])
    order, dist = brute_force(space, queries, x[keep], 7)
    kept_ids = np.array([f"r{i}" for i in range(600)])[keep]
    for qi in range(5):
        assert res["ids"][qi] == list(kept_ids[order[qi]])
        np.testing.assert_allclose(res["distances"][qi], dist[qi], rtol=1e-4, atol=1e-4)
        assert all(m["cat"] != "blue" for m in res["metadatas"][qi])


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_hnsw_recall_and_filters(space):
    col = lakevec.EphemeralClient().create_collection(
        "recall", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    n, dim = 20_000, 32
    x = clustered(n, dim)
    cats = np.array(["red", "blue", "green", "gray"])[np.arange(n) % 4]
    for start in range(0, n, 5000):
        col.add(
            ids=[f"r{i}" for i in range(start, start + 5000)],
            embeddings=x[start : start + 5000],
            metadatas=[{"cat": str(cats[i]), "i": i} for i in range(start, start + 5000)],
        )
    col.delete(ids=[f"r{i}" for i in range(0, 1000)])
    col.wait_for_index()
    manifest = col._engine.snapshot().manifest
    assert {f.index for f in manifest.fragments} - {None} and all(f.index for f in manifest.fragments)
    assert len({f.index for f in manifest.fragments}) == 1  # one index over every fragment
    alive = np.arange(1000, n)
    queries = clustered(50, dim, seed=7)
    k = 10
    for where, keep in [
        (None, alive),
        ({"cat": "red"}, alive[cats[alive] == "red"]),
        ({"i": {"$lt": 1200}}, alive[alive < 1200]),
    ]:
        res = col.query(query_embeddings=queries, n_results=k, where=where, include=["distances"])
        order, _ = brute_force(space, queries, x[keep], k)
        truth = [set(f"r{i}" for i in keep[o]) for o in order]
        recall = np.mean([len(set(r) & t) / k for r, t in zip(res["ids"], truth)])
        assert recall >= 0.95, (where, recall)
        for ids, dists, q in zip(res["ids"], res["distances"], queries):
            rows = np.array([int(i[1:]) for i in ids])
            assert set(rows) <= set(keep.tolist())  # never a deleted or filtered-out row
            _, exact = brute_force(space, q[None], x[rows], len(rows))
            np.testing.assert_allclose(sorted(dists), exact[0], rtol=1e-4, atol=1e-4)  # exact distances


def test_query_sees_updates_and_deletes(collection):
    collection.add(ids=["a", "b", "c"], embeddings=[[0, 0], [10, 10], [20, 20]])
    collection.wait_for_index()
    collection.update(ids=["c"], embeddings=[[0.5, 0.5]])
    collection.delete(ids=["a"])
    res = collection.query(query_embeddings=[[0, 0]], n_results=3)
    assert res["ids"] == [["c", "b"]]
    assert res["distances"][0] == pytest.approx([0.5, 200.0])


def test_query_edge_cases(collection):
    empty = collection.query(query_embeddings=[[1, 2]], n_results=3)
    assert empty["ids"] == [[]] and empty["distances"] == [[]]
    collection.add(
        ids=["a", "b"], embeddings=[[1, 2], [3, 4]], documents=["x", "y"], metadatas=[{"k": 1}, {"k": 2}]
    )
    res = collection.query(query_embeddings=[1, 2], n_results=10)
    assert res["ids"] == [["a", "b"]] and res["documents"] == [["x", "y"]]
    assert set(res) == {
        "ids",
        "embeddings",
        "documents",
        "uris",
        "data",
        "metadatas",
        "distances",
        "included",
    }
    assert res["included"] == ["metadatas", "documents", "distances"]
    with pytest.raises(TypeError):
        collection.query(query_embeddings=[[1, 2]], n_results=0)
    with pytest.raises(InvalidArgumentError):
        collection.query(query_embeddings=[[1, 2]], n_results=-1)
    with pytest.raises(InvalidArgumentError):
        collection.query(query_embeddings=[[1, 2, 3]])
    with pytest.raises(ValueError):
        collection.query()
    with pytest.raises(ValueError):
        collection.query(query_embeddings=[[1, 2]], where={"k": {"$gt": "a"}})
    with_ids = collection.query(query_embeddings=[[0, 0]], ids=["b", "missing"], include=["embeddings"])
    assert with_ids["ids"] == [["b"]]
    np.testing.assert_array_equal(with_ids["embeddings"][0], [[3, 4]])
    assert collection.query(query_embeddings=[[0, 0]], where={"k": 5})["ids"] == [[]]
    # an empty ids filter matches nothing in a query (Chroma answers empty results) but is an
    # error in get and delete (as in Chroma)
    assert collection.query(query_embeddings=[[0, 0], [1, 1]], ids=[])["ids"] == [[], []]
    for call in (collection.get, collection.delete):
        with pytest.raises(InvalidArgumentError, match="non-empty"):
            call(ids=[])


def test_query_texts_use_the_embedding_function(client):
    col = client.create_collection(
        "texts", embedding_function=lambda input: [[float(len(t)), 0.0] for t in input]
    )
    col.add(ids=["short", "long"], documents=["ab", "abcdefgh"])
    assert col.query(query_texts=["abcdefg"], n_results=1)["ids"] == [["long"]]
    assert col.query(query_texts="a", n_results=1)["ids"] == [["short"]]


def test_search_ef_is_mutable_but_space_is_not(client):
    col = client.create_collection(
        "conf", metadata={"hnsw:space": "cosine", "hnsw:search_ef": 50}, embedding_function=None
    )
    assert col.configuration["hnsw"]["ef_search"] == 50
    col.modify(configuration={"hnsw": {"ef_search": 300}})
    assert col.configuration["hnsw"]["ef_search"] == 300
    for bad in ({"space": "l2"}, {"max_neighbors": 8}, {"ef_construction": 10}):
        with pytest.raises(InvalidArgumentError):
            col.modify(configuration={"hnsw": bad})


rows = st.lists(
    st.tuples(s.metadata, st.lists(st.integers(-4, 4), min_size=3, max_size=3)), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=rows,
    where=st.one_of(st.none(), s.where),
    k=st.integers(1, 8),
    space=st.sampled_from(["l2", "cosine", "ip"]),
    chunk=st.integers(1, 20),
    index=st.booleans(),
)
def test_many_fragments_same_as_one(data, where, k, space, chunk, index):
    """Many small adds give the same results as one big add, and both equal brute force."""
    vectors = np.array([v for _, v in data], dtype=np.float32)
    if space == "cosine":
        vectors[np.linalg.norm(vectors, axis=1) == 0] = 1.0
    metas = [m for m, _ in data]
    ids = [f"r{i}" for i in range(len(data))]
    config = {"hnsw": {"space": space}}
    one = lakevec.EphemeralClient().create_collection("one", configuration=config, embedding_function=None)
    many = lakevec.EphemeralClient().create_collection("many", configuration=config, embedding_function=None)
    one.add(ids=ids, embeddings=vectors, metadatas=metas)
    for start in range(0, len(ids), chunk):
        many.add(
            ids=ids[start : start + chunk],
            embeddings=vectors[start : start + chunk],
            metadatas=metas[start : start + chunk],
        )
    if index:
        many.wait_for_index()
    query = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    keep = np.array([where is None or match_where(m, where) for m in metas])
    expected_dist = brute_force(space, query, vectors[keep], k)[1][0] if keep.any() else []
    saved = search_module.EXACT_NS
    if index:  # make exact search look expensive, so the planner takes the HNSW path (with
        search_module.EXACT_NS = 1.0  # oversampling and re-check); on a few dozen rows HNSW is exact
    try:
        for col in (one, many):
            res = col.query(
                query_embeddings=query, n_results=k, where=where, include=["distances", "metadatas"]
            )
            assert len(res["ids"][0]) == min(k, int(keep.sum()))
            np.testing.assert_allclose(res["distances"][0], expected_dist, rtol=1e-4, atol=1e-4)
            assert all(keep[int(i[1:])] for i in res["ids"][0])
    finally:
        search_module.EXACT_NS = saved


def test_indexes_persist_and_reopen(tmp_path):
    root = str(tmp_path / "root")
    col = lakevec.PersistentClient(root).create_collection("persist", embedding_function=None)
    x = clustered(6000, 16)
    for start in range(0, 6000, 2000):
        col.add(ids=[f"r{i}" for i in range(start, start + 2000)], embeddings=x[start : start + 2000])
    col.wait_for_index()
    queries = clustered(5, 16, seed=4)
    before = col.query(query_embeddings=queries, n_results=5)
    again = lakevec.PersistentClient(root).get_collection("persist", embedding_function=None)
    manifest = again._engine.snapshot().manifest
    assert all(f.index for f in manifest.fragments)
    after = again.query(query_embeddings=queries, n_results=5)
    assert after["ids"] == before["ids"]
    assert list(again._engine.indexes._indexes)  # the stored index was opened, not rebuilt


def test_a_fold_that_lost_to_another_indexer_commits_nothing(tmp_path, monkeypatch):
    """Two processes may fold the same tail (a server's background thread and a user's
    wait_for_index): the loser leaves no empty version and no unreferenced index file."""
    monkeypatch.setenv("LAKEVEC_AUTO_INDEX", "0")
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("race", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(500)], embeddings=clustered(500, 8))
    engine = col._engine
    stale = engine.snapshot()
    col.wait_for_index()  # the other indexer wins
    version, files = engine.snapshot().version, sorted((tmp_path / "collections").rglob("*.usearch"))
    tail = [i for i, e in enumerate(stale.manifest.fragments) if e.index is None]
    assert col._indexer._fold(stale, tail, None)
    assert engine.snapshot().version == version
    assert sorted((tmp_path / "collections").rglob("*.usearch")) == files
    assert col.query(query_embeddings=clustered(1, 8), n_results=3)["ids"][0]


@pytest.mark.parametrize("holder", ["live", "exited", "expired", "unreadable"])
def test_background_folds_of_two_processes_do_not_build_the_same_index(tmp_path, monkeypatch, holder):
    """A background fold claims its tail (a lease file), so another process writing the same
    root (a worker of `lakevec run --workers N`) skips it; a claim whose process has exited,
    or that is older than LEASE_SECONDS, is taken over; a fold someone waits for ignores it."""
    import json
    import socket
    import subprocess
    import sys
    import time

    from lakevec.maintenance import indexer as index_module

    monkeypatch.setenv("LAKEVEC_AUTO_INDEX", "0")
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("lease", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(5000)], embeddings=clustered(5000, 4))
    engine = col._engine
    first = engine.snapshot().manifest.fragments[0].id
    lease = tmp_path / "collections" / str(col.id) / "leases" / f"fold-{first}.json"
    lease.parent.mkdir(parents=True)
    pid = os.getpid()
    if holder == "exited":
        pid = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        )
        pid = int(pid.stdout)
    since = time.time() - (index_module.LEASE_SECONDS + 1 if holder == "expired" else 0)
    claim = {"host": socket.gethostname(), "pid": pid, "time": since}
    lease.write_text("{not json" if holder == "unreadable" else json.dumps(claim))

    folded = col._indexer.fold(force=False)
    indexed = all(e.index for e in engine.snapshot().manifest.fragments)
    if holder == "live":
        assert not folded and not indexed and lease.exists()
        col.wait_for_index()  # the caller waits: the claim does not hold it back
        assert all(e.index for e in engine.snapshot().manifest.fragments)
    else:
        assert folded and indexed
    assert not lease.exists() or holder == "live"


def test_an_engine_nobody_uses_is_freed_with_its_threads(monkeypatch):
    """The background indexer and merger threads hold their engine only while they work: a
    client dropped by its user frees its engine (snapshot, caches, DuckDB connection) and the
    threads end, so a process that opens many clients does not grow without bound."""
    import gc
    import uuid
    import weakref

    monkeypatch.setenv("LAKEVEC_AUTO_INDEX", "1")
    col = lakevec.PersistentClient(f"memory://freed-{uuid.uuid4().hex}").create_collection(
        "freed", embedding_function=None
    )
    col.add(ids=["a", "b"], embeddings=[[1.0, 2.0], [3.0, 4.0]])  # starts both threads
    indexer = col._indexer
    threads = [indexer._thread, indexer._merger]
    assert all(t is not None and t.is_alive() for t in threads)
    engine = weakref.ref(col._engine)
    del col, indexer
    for _ in range(3000):  # a thread may still be finishing its work (a fold's pause)
        gc.collect()
        if engine() is None:
            break
        threads[0].join(0.1)
    assert engine() is None
    for thread in threads:
        thread.join(300)
        assert not thread.is_alive()


def test_process_exits_cleanly_while_indexing(tmp_path):
    """The background indexer must not crash the interpreter at exit (usearch native threads)."""
    import subprocess
    import sys

    script = (
        "import numpy as np, lakevec\n"
        f"col = lakevec.PersistentClient({str(tmp_path)!r}).create_collection('exit', embedding_function=None)\n"
        "x = np.random.default_rng(0).standard_normal((30000, 32)).astype('float32')\n"
        "for s in range(0, 30000, 5000):\n"
        "    col.add(ids=[f'r{i}' for i in range(s, s + 5000)], embeddings=x[s:s + 5000])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    col = lakevec.PersistentClient(str(tmp_path)).get_collection("exit", embedding_function=None)
    assert col.count() == 30000
    col.wait_for_index()
    assert col.query(query_embeddings=np.zeros(32), n_results=3)["ids"][0]


def test_vectors_are_reloaded_after_eviction(client):
    from lakevec.lake.fragments import VECTORS

    col = client.create_collection("evict", embedding_function=None)
    x = clustered(3000, 16)
    saved = VECTORS.budget
    VECTORS.budget = 16 * 4 * 500  # room for about one fragment
    try:
        for start in range(0, 3000, 500):
            col.add(ids=[f"r{i}" for i in range(start, start + 500)], embeddings=x[start : start + 500])
        got = col.get(include=["embeddings"])
        np.testing.assert_array_equal(got["embeddings"], x)
        res = col.query(query_embeddings=x[:3], n_results=1, include=["distances"])
        assert res["ids"] == [["r0"], ["r1"], ["r2"]]
    finally:
        VECTORS.budget = saved


@given(
    rows=st.lists(st.integers(1, 5), min_size=1, max_size=5),
    gap=st.booleans(),
    order=st.permutations(range(5)),
    keys=st.lists(st.integers(-3, 40), max_size=30),
)
def test_index_keys_map_to_positions_with_or_without_the_shortcut(rows, gap, order, keys):
    """One shift maps the keys of fragments that follow each other; any other layout (a
    compaction's reordering, gaps in the key space) takes the per-fragment path, same answer."""
    n = len(rows)
    bases = np.cumsum([0, *rows[:-1]]) + (np.arange(n) * 2 if gap else 0) + 3
    perm = [i for i in order if i < n]
    offsets = np.cumsum([0, *[rows[i] for i in perm]])[np.argsort(perm)][:n]
    group = search_module.Group(
        "x", list(range(n)), bases.astype(np.int64), np.array(rows), offsets.astype(np.int64)
    )
    keys = np.array(keys, dtype=np.int64)
    expected = []
    for key in keys.tolist():
        hit = [offsets[i] + key - bases[i] for i in range(n) if bases[i] <= key < bases[i] + rows[i]]
        expected.append(hit[0] if hit else -1)
    assert search_module.keys_to_positions(group, keys).tolist() == expected
    if not gap and perm == sorted(perm):
        assert group.shift is not None


@pytest.mark.parametrize("space", ["l2", "cosine", "ip"])
def test_int8_index_recall_and_exact_distances(monkeypatch, space):
    """From 128 dimensions on, l2 and cosine indexes hold int8 vectors scaled into [-1, 1] (a
    scale per index, kept in the manifest), ip ones float16: recall stays >= 0.95 on vectors far
    outside that range, and distances are the float32 ones. (Unprojected here: test_projection
    tests the projected ones.)"""
    import lakevec.write.index as index_module

    monkeypatch.setattr(index_module, "PROJECT_MIN_ROWS", 10**9)
    col = lakevec.EphemeralClient().create_collection(
        "int8", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    n, dim = 12_000, 192
    x = 40.0 * clustered(n, dim, rank=24)
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=x)
    col.wait_for_index()
    snap = col._engine.snapshot()
    (path,) = {f.index for f in snap.manifest.fragments}
    scale = snap.manifest.fragments[0].index_scale
    assert scale == {"cosine": 1.0, "ip": None}.get(space) or 0 < scale < 0.1
    dtype = "ScalarKind.F16" if space == "ip" else "ScalarKind.I8"
    assert str(col._engine._open_indexes(snap)[path].dtype) == dtype
    queries = 40.0 * clustered(30, dim, seed=7, rank=24)
    res = col.query(query_embeddings=queries, n_results=10, include=["distances"])
    d = distance_matrix(space, queries, x)
    truth = np.argsort(d, axis=1)[:, :10]
    recall = np.mean([len({f"r{i}" for i in t} & set(r)) / 10 for t, r in zip(truth, res["ids"])])
    assert recall >= 0.95, recall
    for row, ids, dists in zip(d, res["ids"], res["distances"]):
        expected = row[[int(i[1:]) for i in ids]]
        np.testing.assert_allclose(dists, expected, rtol=1e-4, atol=1e-3 * max(1.0, abs(expected).max()))


def uneven(n, dim, seed=0):
    """Clustered vectors whose lengths spread over 1-3x, as unnormalized embeddings do."""
    rng = np.random.default_rng(seed + 100)
    return clustered(n, dim, seed=seed, rank=24) * rng.uniform(1, 3, (n, 1)).astype(np.float32)


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_int8_rows_are_rounded_by_lakevec_and_keep_l2_lengths(monkeypatch, space):
    """An int8 index holds round(127 x) of each scaled row (index_codec "i8"): usearch's own
    cast would divide each vector by its length, ranking l2 neighbours by angle."""
    import lakevec.write.index as index_module
    from lakevec.lake.quantize import INT8, quantized

    monkeypatch.setattr(index_module, "PROJECT_MIN_ROWS", 10**9)

    col = lakevec.EphemeralClient().create_collection(
        "rounded", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    n, dim = 6_000, 128
    x = uneven(n, dim)
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=x)
    col.wait_for_index()
    snap = col._engine.snapshot()
    (entry,) = snap.manifest.fragments
    assert entry.index_codec == INT8
    index = col._engine._open_indexes(snap)[entry.index]
    rows = np.arange(0, n, 97)
    held = np.stack(index.get(entry.index_base + rows, dtype=np.int8))
    np.testing.assert_array_equal(held, quantized(space, x[rows], entry.index_scale, INT8))
    # the graph's own top 10 (before the float32 re-rank) already finds most true neighbours
    queries = uneven(40, dim, seed=7)
    found = index.search(quantized(space, queries, entry.index_scale, INT8), 10).keys
    truth = np.argsort(distance_matrix(space, queries, x), axis=1)[:, :10]
    assert np.mean([len(set(f - entry.index_base) & set(t)) / 10 for f, t in zip(found, truth)]) >= 0.8


def test_an_int8_index_without_a_codec_is_searched_with_float_queries():
    """Indexes written before index_codec took float rows through usearch's cast; their queries
    still enter that way, and the answers stay exact."""
    from usearch.index import Index

    from lakevec.lake.quantize import quantized
    from lakevec.write.index import new_index

    col = lakevec.EphemeralClient().create_collection("legacy", embedding_function=None)
    n, dim = 20_000, 128
    x = clustered(n, dim, rank=24)
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=x)
    col.wait_for_index()
    engine = col._engine
    (entry,) = engine.snapshot().manifest.fragments
    legacy: Index = new_index(dim, engine.snapshot().manifest.config["hnsw"])
    legacy.add(entry.index_base + np.arange(n), quantized("l2", x, entry.index_scale, None))
    engine.storage.write_new(engine.cache.path("index/legacy.usearch"), legacy.save())
    engine.commit_transform(
        lambda m: m.child(
            "index",
            fragments=tuple(
                dataclasses.replace(e, index="index/legacy.usearch", index_codec=None) for e in m.fragments
            ),
        )
    )
    index = engine._open_indexes(engine.snapshot())["index/legacy.usearch"]
    entered, search = [], index.search

    def seen(vectors, *args, **kwargs):
        entered.append(vectors.dtype)
        return search(vectors, *args, **kwargs)

    index.search = seen
    queries = clustered(20, dim, seed=7, rank=24)
    res = col.query(query_embeddings=queries, n_results=10)
    assert entered and all(d == np.float32 for d in entered), entered
    truth = np.argsort(distance_matrix("l2", queries, x), axis=1)[:, :10]
    recall = np.mean([len({f"r{i}" for i in t} & set(r)) / 10 for t, r in zip(truth, res["ids"])])
    assert recall >= 0.95, recall


@given(n=st.integers(0, 3_000), dim=st.sampled_from([2, 16, 128]), int8=st.booleans())
@settings(max_examples=15, deadline=None)
def test_insertion_order_is_a_permutation_that_groups_near_rows(n, dim, int8):
    from lakevec.write.index import insertion_order

    x = clustered(n, dim, rank=min(dim, 4)) if n else np.zeros((0, dim), dtype=np.float32)
    if int8:
        x = np.rint(np.clip(x / max(1e-9, float(np.abs(x).max(initial=0))), -1, 1) * 127).astype(np.int8)
    order = insertion_order(x, min_rows=64, cluster_rows=100)
    assert np.array_equal(np.sort(order), np.arange(n))
    if n >= 64 and dim > 2:  # consecutive rows are nearer than rows in the given order
        step = lambda v: float(np.mean(np.abs(np.diff(v.astype(np.float32), axis=0))))  # noqa: E731
        assert step(x[order]) < step(x)


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_rows_added_in_cluster_order_keep_their_keys(monkeypatch, tmp_path, space):
    """A fold adds its rows cluster by cluster; every row's key still names that row."""
    import lakevec.write.index as index_module

    monkeypatch.setattr(index_module, "ORDER_MIN_ROWS", 256)
    monkeypatch.setattr(index_module, "ORDER_CLUSTER_ROWS", 200)
    col = lakevec.PersistentClient(str(tmp_path)).create_collection(
        "ordered", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    n, dim = 4_000, 128
    x = uneven(n, dim)
    for a in range(0, n, 1_000):
        col.add(ids=[f"r{i}" for i in range(a, a + 1_000)], embeddings=x[a : a + 1_000])
    col.delete(ids=["r5", "r1500"])
    col.wait_for_index()
    snap = col._engine.snapshot()
    assert all(e.index for e in snap.manifest.fragments)
    from lakevec.lake.quantize import quantized

    index = next(iter(col._engine._open_indexes(snap).values()))
    assert len(index) == n - 2  # deleted rows are not added
    alive = np.setdiff1d(np.arange(n), [5, 1500])
    start = np.cumsum([0] + [e.rows for e in snap.manifest.fragments])
    for e, first in zip(snap.manifest.fragments, start):  # each key holds its own row
        rows = np.setdiff1d(np.arange(e.rows), [5 - first, 1500 - first])
        held = np.stack(index.get(e.index_base + rows, dtype=np.int8))
        np.testing.assert_array_equal(held, quantized(space, x[first + rows], e.index_scale, e.index_codec))
    rows = alive[::37]
    res = col.query(query_embeddings=x[rows], n_results=1, include=["distances"])
    assert [r[0] for r in res["ids"]] == [f"r{i}" for i in rows]
    queries = uneven(20, dim, seed=7)
    res = col.query(query_embeddings=queries, n_results=10)
    d = distance_matrix(space, queries, x)
    d[:, [5, 1500]] = np.inf
    truth = np.argsort(d, axis=1)[:, :10]
    recall = np.mean([len({f"r{i}" for i in t} & set(r)) / 10 for t, r in zip(truth, res["ids"])])
    assert recall >= 0.95, recall


@pytest.mark.parametrize(
    "space,dim,where", [("l2", 192, "memory"), ("cosine", 192, "file"), ("l2", 16, "file")]
)
def test_index_tiers_are_searched_in_one_call(monkeypatch, tmp_path, space, dim, where):
    """Folds give each new index keys above the older ones', so a collection's index tiers are
    searched as one usearch ``Indexes``: same recall, exact distances, never a filtered-out row."""
    import lakevec.maintenance.indexer as indexer
    import lakevec.read.query as query_module

    monkeypatch.setattr(indexer, "GROUP_MAX_ROWS", 5000)  # folds a caller waits for
    monkeypatch.setattr(indexer, "HEAD_MAX_ROWS", 5000)  # and background ones
    client = lakevec.EphemeralClient() if where == "memory" else lakevec.PersistentClient(str(tmp_path))
    col = client.create_collection(
        f"tiers-{space}-{dim}", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    n = 13_000
    x = 10.0 * clustered(n, dim, rank=12)
    for start in range(0, n, 5000):
        end = min(n, start + 5000)
        col.add(
            ids=[f"r{i}" for i in range(start, end)],
            embeddings=x[start:end],
            metadatas=[{"i": i} for i in range(start, end)],
        )
        col.wait_for_index()
    snap = col._engine.snapshot()
    groups, tail = snap.search_groups
    assert len(groups) == 3 and not tail
    spans = sorted((int(g.bases.min()), int((g.bases + g.rows).max())) for g in groups)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # disjoint key ranges
    queries = 10.0 * clustered(20, dim, seed=7, rank=12)
    for filt, keep in [(None, np.arange(n)), ({"i": {"$gte": 2000}}, np.arange(2000, n))]:
        query_module._COMBINED.clear()
        res = col.query(query_embeddings=queries, n_results=10, where=filt, include=["distances"])
        assert [v for _, v in query_module._COMBINED.values()] != [None]  # the one-call path ran
        d = distance_matrix(space, queries, x)
        order = np.argsort(d[:, keep], axis=1)[:, :10]
        truth = [{f"r{i}" for i in keep[o]} for o in order]
        recall = np.mean([len(t & set(r)) / 10 for t, r in zip(truth, res["ids"])])
        assert recall >= 0.95, (filt, recall)
        for row, ids, got in zip(d, res["ids"], res["distances"]):
            rows = np.array([int(i[1:]) for i in ids])
            assert set(rows) <= set(keep.tolist())
            np.testing.assert_allclose(got, row[rows], rtol=1e-4, atol=1e-3 * max(1.0, abs(row[rows]).max()))


def test_filtered_plan_searches_deeper_where_the_filter_thins_out():
    """A filter keeping a share p of an index runs the graph search at ef / p; a neighbourhood
    found thinner than planned is searched again deeper, and by brute force once that is cheaper."""
    plan = search_module.Plan(total=1_000_000, k=10, matching=450_000, ef_search=100, dim=384, int8=True)
    assert plan.ef == 223 and plan.count == 178 and not plan.exact
    assert plan.after(allowed=36, fetched=80) is None  # as dense as planned: the answer stands
    thin = plan.after(allowed=3, fetched=80)
    assert thin is not None and thin.share < plan.share / 2 and thin.ef > plan.ef
    steps = [plan]
    while steps[-1] is not None and not steps[-1].exact:
        steps.append(steps[-1].after(allowed=0, fetched=steps[-1].count))
    assert steps[-1] is not None and steps[-1].exact  # nothing allowed nearby: brute force
    assert search_module.Plan(100_000, 10, 1_000, 100, 384, True).exact  # 1 %: brute force at once


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_filtered_recall_under_correlated_filters(space, monkeypatch):
    """A filter that keeps one side of the space leaves queries on the other side with no
    allowed row nearby: the graph search's recall stays >= 0.95, every query gets exactly min(k, matches) rows with
    exact distances, and the thin neighbourhoods reach the brute-force fallback."""
    n, dim, k = 30_000, 128, 10
    x = clustered(n, dim, seed=3)
    near = np.argsort(np.argsort(x @ np.random.default_rng(5).standard_normal(dim))) * 100 // n
    col = lakevec.EphemeralClient().create_collection(
        "corr", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    for start in range(0, n, 10_000):
        end = start + 10_000
        col.add(
            ids=[f"r{i}" for i in range(start, end)],
            embeddings=x[start:end],
            metadatas=[{"near": int(v), "odd": i % 2} for i, v in zip(range(start, end), near[start:end])],
        )
    col.wait_for_index()
    fallbacks = []
    real_exact = search_module.exact_search

    def counting(snap, space_, queries, positions, k_, vectors=None):
        fallbacks.append(len(queries))
        return real_exact(snap, space_, queries, positions, k_, vectors)

    monkeypatch.setattr("lakevec.read.query.exact_search", counting)
    # the graph search for every filter (at this size brute force over the allowed rows is
    # cheaper, and the planner would take it); only a thin neighbourhood falls back to it
    monkeypatch.setattr("lakevec.read.query.prefer_exact", lambda *a: False)
    probed = []
    real_record = search_module.Neighbourhoods.record

    def recording(self, thin, queries):
        probed.append(self.probe)
        real_record(self, thin, queries)

    monkeypatch.setattr(search_module.Neighbourhoods, "record", recording)
    queries = clustered(40, dim, seed=11)
    for where, keep in [
        ({"near": {"$lt": 45}}, near < 45),
        ({"near": {"$gte": 60}}, near >= 60),
        ({"odd": 1}, np.arange(n) % 2 == 1),
        ({"near": {"$lt": 10}}, near < 10),  # learns that the filter is correlated ...
        ({"near": {"$lt": 10}}, near < 10),  # ... and probes each query first
    ]:
        rows = np.flatnonzero(keep)
        res = col.query(query_embeddings=queries, n_results=k, where=where, include=["distances"])
        d = distance_matrix(space, queries, x[rows])
        truth = np.argsort(d, axis=1)[:, :k]
        recall = np.mean([len(set(r) & {f"r{i}" for i in rows[t]}) / k for r, t in zip(res["ids"], truth)])
        assert recall >= 0.95, (where, recall)
        for ids, dists, qd in zip(res["ids"], res["distances"], d):
            got = np.array([int(i[1:]) for i in ids])
            assert len(got) == k and keep[got].all()
            np.testing.assert_allclose(dists, np.sort(qd[np.searchsorted(rows, got)]), rtol=1e-3, atol=1e-3)
    assert sum(fallbacks) > 0  # some query's neighbourhood held too few allowed rows
    assert probed[-1] and not any(probed[:3])  # only the correlated 10 % filter is probed


def test_probe_plans_from_the_neighbourhood_it_measured():
    """A probe searches at the unfiltered depth; a neighbourhood as dense as the whole index
    plans as the filter does, a denser one shallower, and an empty one goes deeper at once
    (here straight to brute force, a 10 % filter of 1M)."""
    plan = search_module.Plan(1_000_000, 10, 100_000, ef_search=100, dim=384, int8=True)
    probe = dataclasses.replace(plan, share=1.0, probe=True)
    assert probe.ef == 100 and probe.count == 80 and not probe.exact
    assert probe.after(allowed=60, fetched=80) is None  # dense: the probe's answer stands
    uniform = probe.after(allowed=7, fetched=80)
    assert uniform is not None and (uniform.share, uniform.ef, uniform.probe) == (plan.share, plan.ef, False)
    near = probe.after(allowed=24, fetched=80)
    assert near is not None and near.share == 0.3 and near.ef < plan.ef
    far = probe.after(allowed=0, fetched=80)
    assert far is not None and far.share == plan.share / 8 and far.exact


def test_neighbourhoods_learn_a_correlated_filter():
    seen = search_module.Neighbourhoods()
    for _ in range(50):
        seen.record(thin=0, queries=1)
    seen.record(thin=1, queries=1)  # a rare thin neighbourhood: a uniform filter's bad luck
    assert not seen.probe
    for _ in range(5):
        seen.record(thin=1, queries=1)
    assert seen.probe
    seen.record(thin=0, queries=40)  # a batch of dense neighbourhoods forgets the past
    assert not seen.probe


def test_filtered_plan_stops_at_the_bottom_of_the_index():
    """A graph that keeps returning fewer candidates than asked ends the deepening once the
    plan cannot go deeper, instead of searching the same depth forever."""
    plan = search_module.Plan(100_000_000, 10, 100_000_000, ef_search=100, dim=384, int8=False)
    steps = 0
    while plan is not None and steps < 50:
        assert not plan.exact  # brute force over 100M rows never wins here
        plan = plan.after(allowed=0, fetched=plan.count - 1)
        steps += 1
    assert plan is None and steps < 50


_LEAN_QUERY = """
import sys
import numpy as np
import lakevec
col = lakevec.PersistentClient(sys.argv[1]).get_collection("lean", embedding_function=None)
got = col.query(query_embeddings=np.ones((1, 4), np.float32), n_results=3)
print(sorted(m for m in ("duckdb", "polars", "pandas") if m in sys.modules), got["ids"])
"""


def test_a_vector_query_loads_no_sql_or_dataframe_library(tmp_path):
    """A process that only runs vector queries does not import DuckDB, Polars or pandas
    (0.1-0.3 s each of a cold start); the filters that need them import them."""
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("lean", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(50)], embeddings=np.arange(200, dtype=np.float32).reshape(50, 4))
    out = subprocess.run(
        [sys.executable, "-c", _LEAN_QUERY, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("]")[0] + "]" == "[]", out.stdout
    assert col.query(
        query_embeddings=np.ones((1, 4), np.float32), n_results=3, where_document={"$contains": "x"}
    )["ids"] == [[]]
