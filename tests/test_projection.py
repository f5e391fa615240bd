"""Projected int8 indexes (lake/quantize.py): rows on a sample's principal axes, re-ranked with
the stored float32 rows, on every storage root."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import lakevec
from lakevec.lake.quantize import INT8, PROJECTED, Projection, choose_projection, quantized
from tests.test_query import clustered, distance_matrix


def _recall(truth: np.ndarray, ids: list[list[str]]) -> float:
    return float(np.mean([len({f"r{i}" for i in t} & set(r)) / len(t) for t, r in zip(truth, ids)]))


def test_choose_projection_keeps_the_fewest_axes_that_hold_the_variance():
    rng = np.random.default_rng(0)
    low_rank = clustered(4_000, 256, rank=16)
    chosen = choose_projection("l2", low_rank)
    assert chosen is not None and chosen.dims == 128  # half the dimension at least
    assert chosen.retained(low_rank) > 0.99
    assert not chosen.unit and choose_projection("cosine", low_rank).unit  # type: ignore[union-attr]
    # variance spread over every axis, inner product, or too few rows: no projection
    assert choose_projection("l2", rng.standard_normal((4_000, 256)).astype(np.float32)) is None
    assert choose_projection("ip", low_rank) is None
    assert choose_projection("l2", low_rank[:100]) is None
    # axes are orthonormal, and the file keeps them exactly
    np.testing.assert_allclose(chosen.axes.T @ chosen.axes, np.eye(chosen.dims), atol=1e-5)
    again = Projection.from_bytes(chosen.to_bytes())
    np.testing.assert_array_equal(again.axes, chosen.axes)
    np.testing.assert_array_equal(again.mean, chosen.mean)
    with pytest.raises(ValueError):
        quantized("l2", low_rank, 1.0, PROJECTED, None)


def test_projected_distances_rank_as_the_space_does():
    """l2 between projected rows approximates l2 (cosine: the normalized rows' l2, 2 - 2 cos)."""
    x = clustered(3_000, 128, rank=8) * np.random.default_rng(1).uniform(1, 3, (3_000, 1)).astype(np.float32)
    for space in ("l2", "cosine"):
        chosen = choose_projection(space, x)
        assert chosen is not None
        p = chosen.apply(x[:50])
        near = ((p[:, None] - p[None]) ** 2).sum(-1)
        exact = distance_matrix(space, x[:50], x[:50])
        if space == "cosine":
            exact = 2 * exact  # 1 - cos
        np.testing.assert_allclose(near, exact, atol=0.02 * exact.max())


@pytest.mark.parametrize("space", ["l2", "cosine"])
def test_a_projected_index_finds_the_exact_neighbours(root, space):
    """A collection whose rows have few principal axes is indexed projected: each key holds its
    row projected and rounded; queries, filtered or not, find brute force's rows at exact
    distances, in this process and in a new one."""
    n, dim = 12_000, 128
    x = clustered(n, dim, rank=12)
    col = lakevec.PersistentClient(root).create_collection(
        "projected", configuration={"hnsw": {"space": space}}, embedding_function=None
    )
    for a in range(0, n, 4_000):
        ids = [f"r{i}" for i in range(a, a + 4_000)]
        col.add(ids=ids, embeddings=x[a : a + 4_000], metadatas=[{"c": i % 7} for i in range(a, a + 4_000)])
    col.delete(ids=["r3"])
    col.wait_for_index()
    engine = col._engine
    snap = engine.snapshot()
    entries = snap.manifest.fragments
    assert {e.index_codec for e in entries} == {PROJECTED}
    assert len({e.index_projection for e in entries}) == 1  # one set of axes, and one index call
    projection = snap.projection(entries[0].index_projection)
    assert projection is not None and projection.dims == 64
    assert entries[0].index_projection in snap.manifest.files()
    index = engine._open_indexes(snap)[entries[0].index]
    assert index.ndim == 64
    rows = np.arange(4, 4_000, 101)
    held = np.stack(index.get(entries[0].index_base + rows, dtype=np.int8))
    np.testing.assert_array_equal(
        held, quantized(space, x[rows], entries[0].index_scale, PROJECTED, projection)
    )

    queries = clustered(40, dim, seed=9, rank=12)
    d = distance_matrix(space, queries, x)
    d[:, 3] = np.inf
    truth = np.argsort(d, axis=1)[:, :10]
    kept = np.arange(n) % 7 == 2
    filtered = np.argsort(np.where(kept[None], d, np.inf), axis=1)[:, :10]
    for reader in (col, lakevec.PersistentClient(root).get_collection("projected", embedding_function=None)):
        got = reader.query(query_embeddings=queries, n_results=10, include=["distances"])
        assert _recall(truth, got["ids"]) >= 0.95
        for q, (ids, dist) in enumerate(zip(got["ids"], got["distances"])):
            np.testing.assert_allclose(dist, d[q, [int(i[1:]) for i in ids]], rtol=1e-3, atol=1e-3)
        some = reader.query(query_embeddings=queries, n_results=10, where={"c": 2})
        assert all(int(i[1:]) % 7 == 2 for ids in some["ids"] for i in ids)
        assert _recall(filtered, some["ids"]) >= 0.95


def test_small_or_isotropic_collections_keep_plain_int8(tmp_path):
    rng = np.random.default_rng(3)
    client = lakevec.PersistentClient(str(tmp_path))
    small = client.create_collection("small", embedding_function=None)
    small.add(ids=[f"r{i}" for i in range(1_000)], embeddings=clustered(1_000, 128, rank=8))
    noise = client.create_collection("noise", embedding_function=None)
    noise.add(
        ids=[f"r{i}" for i in range(5_000)], embeddings=rng.standard_normal((5_000, 128)).astype(np.float32)
    )
    for col in (small, noise):
        col.wait_for_index()
        entries = col._engine.snapshot().manifest.fragments
        assert {(e.index_codec, e.index_projection) for e in entries} == {(INT8, None)}


def test_rows_the_axes_miss_start_an_index_with_their_own(tmp_path, monkeypatch):
    """New rows whose variance the head index's axes do not hold go to a new index with new
    axes; both are searched, each with its own queries' projection."""
    import lakevec.maintenance.indexer as indexer

    monkeypatch.setattr(indexer, "FOLD_MIN_ROWS", 1)
    n, dim = 6_000, 128
    turn = np.linalg.qr(np.random.default_rng(5).standard_normal((dim, dim)))[0].astype(np.float32)
    first = clustered(n, dim, rank=8, seed=1)
    second = clustered(n, dim, rank=8, seed=2) @ turn  # another subspace
    x = np.concatenate([first, second])
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("drift", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=first)
    col.wait_for_index()
    col.add(ids=[f"r{i}" for i in range(n, 2 * n)], embeddings=second)
    col.wait_for_index()
    entries = col._engine.snapshot().manifest.fragments
    assert len({e.index for e in entries}) == 2
    assert len({e.index_projection for e in entries}) == 2 and {e.index_codec for e in entries} == {PROJECTED}
    queries = np.concatenate([clustered(15, dim, rank=8, seed=3), clustered(15, dim, rank=8, seed=4) @ turn])
    queries += 0.01 * np.random.default_rng(4).standard_normal(queries.shape).astype(np.float32)
    truth = np.argsort(distance_matrix("l2", queries, x), axis=1)[:, :10]
    assert _recall(truth, col.query(query_embeddings=queries, n_results=10)["ids"]) >= 0.95


def test_forks_and_compaction_keep_projected_indexes_searchable(tmp_path):
    n, dim = 8_000, 128
    x = clustered(n, dim, rank=10)
    client = lakevec.PersistentClient(str(tmp_path))
    col = client.create_collection("source", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=x)
    col.wait_for_index()
    queries = clustered(20, dim, seed=5, rank=10)
    truth = np.argsort(distance_matrix("l2", queries, x), axis=1)[:, :10]
    fork = col.fork("forked")
    (entry,) = {(e.index, e.index_projection) for e in fork._engine.snapshot().manifest.fragments}
    assert all(p is not None and p.startswith("../") for p in entry)  # the source's files
    assert _recall(truth, fork.query(query_embeddings=queries, n_results=10)["ids"]) >= 0.95
    assert fork._engine.snapshot().search_groups[0]  # searched through its index

    from lakevec.maintenance.compact import _detach

    engine = col._engine
    _detach(col._indexer, {e.index for e in engine.snapshot().manifest.fragments})
    assert all(e.index_projection is None for e in engine.snapshot(fresh=True).manifest.fragments)
    col.wait_for_index()
    assert {e.index_codec for e in engine.snapshot(fresh=True).manifest.fragments} == {PROJECTED}
    assert _recall(truth, col.query(query_embeddings=queries, n_results=10)["ids"]) >= 0.95


def test_an_index_whose_projection_is_gone_is_searched_exactly(tmp_path):
    n, dim = 6_000, 128
    x = clustered(n, dim, rank=10)
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("lost", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=x)
    col.wait_for_index()
    engine = col._engine
    (entry,) = engine.snapshot().manifest.fragments
    engine.storage.delete(engine.cache.path(entry.index_projection))
    reader = lakevec.PersistentClient(str(tmp_path)).get_collection("lost", embedding_function=None)
    groups, tail = reader._engine.snapshot().search_groups
    assert groups == [] and tail == [0]
    queries = clustered(10, dim, seed=5, rank=10)
    truth = np.argsort(distance_matrix("l2", queries, x), axis=1)[:, :10]
    assert _recall(truth, reader.query(query_embeddings=queries, n_results=10)["ids"]) == 1.0


def test_entries_without_a_projection_read_as_before():
    """Manifests of format 3 (no index_projection) still load."""
    from lakevec.lake.manifest import FragmentEntry, Manifest

    entry = FragmentEntry("f", "data/f.parquet", 10, 10, 0, 9, 100, index="index/a.usearch", index_codec=INT8)
    doc = Manifest.empty({}).to_json()
    doc["format_version"] = 3
    doc["fragments"] = [{k: v for k, v in dataclasses.asdict(entry).items() if k != "index_projection"}]
    assert Manifest.from_json(doc).fragments == (entry,)


@pytest.mark.parametrize("cut", [0, 10, 0.5])
def test_a_cut_short_projection_is_a_corrupt_file_and_changes_nothing(tmp_path, cut):
    """A projection (or route, or postings) file that is not a whole .npz file is reported as a
    corrupt file, not as zipfile's or EOF errors; the collection keeps every row."""
    from lakevec.errors import CorruptFileError
    from lakevec.lake.npz import load_npz
    from tests.conftest import storage_state

    n, dim = 6_000, 128
    x = clustered(n, dim, rank=10)
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("cut", embedding_function=None)
    col.add(ids=[f"r{i}" for i in range(n)], embeddings=x)
    col.wait_for_index()
    engine = col._engine
    (entry,) = engine.snapshot().manifest.fragments
    full = engine.cache.path(entry.index_projection)
    data = open(full, "rb").read()
    with pytest.raises(ValueError):
        load_npz(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    with open(full, "wb") as f:
        f.write(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    reader = lakevec.PersistentClient(str(tmp_path)).get_collection("cut", embedding_function=None)
    before = storage_state(reader)
    with pytest.raises(CorruptFileError):
        reader.query(query_embeddings=x[:2], n_results=3)
    assert storage_state(reader) == before
    assert reader.count() == n
