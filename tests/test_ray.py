"""lakevec.ray on a real local Ray cluster (2 CPUs, no dashboard, no telemetry), on local disk
and on S3 (moto's server on 127.0.0.1): the sink's one atomic commit, a killed write task,
embedding actors, index tiers, reads and batch queries against the local results and an
exact oracle."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import lakevec
from tests.conftest import make_root

ray = pytest.importorskip("ray")
lr = pytest.importorskip("lakevec.ray")

# one Ray cluster at a time on a 2-core machine: every Ray test runs on one pytest worker
pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture
def cluster(ray_cluster):
    return ray_cluster


@pytest.fixture(params=["file", "s3"])
def root(request, tmp_path, cluster):
    return make_root(request.param, tmp_path, request)


def _table(n: int, dim: int = 16, start: int = 0, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    rows = np.arange(start, start + n)
    return pa.table(
        {
            "id": [f"id{i}" for i in rows],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
            "document": [f"document {i}" for i in rows],
            "genre": [("a", "b", "c")[i % 3] for i in rows],
            "year": rows.tolist(),
        }
    )


def _vectors(table: pa.Table) -> np.ndarray:
    column = table.column("embedding").combine_chunks()
    return column.values.to_numpy().reshape(len(column), -1)


def _files(collection, sub: str) -> set[str]:
    engine = collection._engine
    return {f"{sub}/{name}" for name in engine.storage.listdir(engine.cache.path(sub))}


def _exact(vectors: np.ndarray, ids: list[str], queries: np.ndarray, k: int) -> list[list[str]]:
    d = ((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    return [[ids[j] for j in np.argsort(row, kind="stable")[:k]] for row in d]


def test_sink_adds_every_row_in_one_commit(root):
    table = _table(3000)
    result = lr.write(ray.data.from_arrow(table).repartition(4), root, "ray-col", rows_per_fragment=500)
    collection = lakevec.PersistentClient(root).get_collection("ray-col")
    assert result == {"version": 1, "rows": 3000}
    assert collection.version == 1 and collection.count() == 3000
    manifest = collection._engine.snapshot().manifest
    assert all(f.rows <= 500 for f in manifest.fragments)
    assert _files(collection, "data") == {f.path for f in manifest.fragments}
    got = collection.get(ids=["id0", "id2999"], include=["documents", "metadatas", "embeddings"])
    assert got["ids"] == ["id0", "id2999"]
    assert got["documents"] == ["document 0", "document 2999"]
    assert got["metadatas"] == [{"genre": "a", "year": 0}, {"genre": "c", "year": 2999}]
    np.testing.assert_array_equal(got["embeddings"], _vectors(table)[[0, 2999]])
    # insertion order follows the dataset's order within each task
    first = collection.get(limit=3000)["ids"]
    assert sorted(first) == sorted(table.column("id").to_pylist())


def test_sink_skips_ids_the_collection_or_an_earlier_row_holds(root, cluster):
    client = lakevec.PersistentClient(root)
    collection = client.create_collection("dups", embedding_function=None)
    old = _table(100, seed=1)
    collection.add_table(old)
    # ids 50..249 (50..99 exist already), then 200..299 again in another block
    incoming = pa.concat_tables([_table(200, start=50, seed=2), _table(100, start=200, seed=3)])
    sink = lr.CollectionSink(root, "dups", rows_per_fragment=100)
    ray.data.from_arrow(incoming).repartition(3).write_datasink(sink)
    assert sink.result["rows"] == 200
    assert collection.count() == 300
    got = collection.get(ids=["id60", "id220"], include=["embeddings"])
    # id60 keeps its first row; id220 the row of its first occurrence in the dataset
    np.testing.assert_array_equal(got["embeddings"][0], _vectors(old)[60])
    np.testing.assert_array_equal(got["embeddings"][1], _vectors(incoming)[170])


def test_sink_rebases_on_a_commit_made_while_it_ran(root, cluster):
    client = lakevec.PersistentClient(root)
    collection = client.create_collection("rebase", embedding_function=None)
    sink = lr.CollectionSink(root, "rebase", rows_per_fragment=400)
    collection.add_table(_table(100, start=900, seed=5))  # another writer, after the sink began
    ray.data.from_arrow(_table(1000)).repartition(2).write_datasink(sink)
    assert collection.count() == 1000  # the other writer's 100 rows, and the sink's 900 others
    assert sink.result == {"version": 2, "rows": 900}
    rows = collection.get(limit=2000)["ids"]
    assert rows[:100] == [f"id{i}" for i in range(900, 1000)]  # committed first, read first


def test_sink_names_a_key_two_tasks_typed_differently(root, cluster):
    """Two tasks each see a new key with another type: the commit gives one of them the
    ``key::kind`` name, as add would, and rewrites that fragment's column to match."""
    first = _table(50).append_column("x", pa.array(list(range(50)), pa.int64()))
    second = _table(50, start=50).append_column("x", pa.array([f"s{i}" for i in range(50)]))
    ds = ray.data.from_arrow([first, second])
    lr.write(ds, root, "kinds", rows_per_fragment=50)
    collection = lakevec.PersistentClient(root).get_collection("kinds")
    names = {(f.key, f.kind): f.name for f in collection._engine.snapshot().manifest.fields}
    assert names[("x", "int")] == "x" and names[("x", "str")] == "x::str"
    got = collection.get(ids=["id3", "id53"], include=["metadatas"])
    assert [m["x"] for m in got["metadatas"]] == [3, "s3"]
    assert collection.get(where={"x": "s3"})["ids"] == ["id53"]
    assert collection.get(where={"x": 3})["ids"] == ["id3"]
    manifest = collection._engine.snapshot().manifest
    assert _files(collection, "data") == {f.path for f in manifest.fragments}


def test_bad_rows_fail_the_write_and_commit_nothing(root, cluster):
    client = lakevec.PersistentClient(root)
    collection = client.create_collection("bad", embedding_function=None)
    collection.add_table(_table(10, start=1000))
    good, bad = _table(200), _table(200, start=200)
    bad = bad.set_column(bad.column_names.index("year"), "year", pa.array([{"nested": 1}] * 200))
    with pytest.raises(Exception, match="(?i)metadata"):
        lr.write(ray.data.from_arrow([good, bad]), root, "bad", rows_per_fragment=100)
    assert collection.version == 1 and collection.count() == 10
    manifest = collection._engine.snapshot().manifest
    assert _files(collection, "data") == {f.path for f in manifest.fragments}
    with pytest.raises(lakevec.errors.InvalidArgumentError, match="dimension of 16, got 8"):
        lr.write(ray.data.from_arrow(_table(100, dim=8)), root, "bad")
    assert collection.version == 1 and _files(collection, "data") == {f.path for f in manifest.fragments}


class KillFirstAttempt(lr.CollectionSink):
    """Stages task 0's fragments, then kills its worker process (once): Ray retries the task."""

    marker: str = ""

    def write(self, blocks, ctx):
        staged = super().write(blocks, ctx)
        if ctx.task_idx == 0 and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(len(staged)))
            os._exit(1)
        return staged


def test_a_killed_write_task_is_retried_without_duplicates(root, tmp_path):
    sink = KillFirstAttempt(root, "killed", rows_per_fragment=250)
    sink.marker = str(tmp_path / f"killed-{uuid.uuid4().hex}")
    ray.data.from_arrow(_table(2000)).repartition(4).write_datasink(sink, ray_remote_args={"max_retries": 3})
    assert int(Path(sink.marker).read_text()) > 0  # the first attempt staged files, then died
    collection = lakevec.PersistentClient(root).get_collection("killed")
    assert collection.count() == 2000 and sink.result["rows"] == 2000
    ids = collection.get(limit=5000)["ids"]
    assert len(ids) == len(set(ids)) == 2000
    manifest = collection._engine.snapshot().manifest
    assert _files(collection, "data") == {
        f.path for f in manifest.fragments
    }  # the dead attempt's files are gone


class _Hash:
    """A Chroma-protocol embedding function that needs no model."""

    def __call__(self, input):
        return [
            np.frombuffer(uuid.uuid5(uuid.NAMESPACE_URL, t).bytes, dtype=np.uint8).astype(np.float32)
            for t in input
        ]

    @staticmethod
    def name() -> str:
        return "hash"


def test_embed_stage_matches_the_function_run_locally(cluster):
    docs = pa.table({"id": [f"d{i}" for i in range(40)], "document": [f"text number {i}" for i in range(40)]})
    out = lr.embed(ray.data.from_arrow(docs), function=_Hash(), batch_size=16).to_arrow_refs()
    table = pa.concat_tables(ray.get(out)).sort_by("id")
    expected = np.asarray(_Hash()(table.column("document").to_pylist()), dtype=np.float32)
    np.testing.assert_array_equal(_vectors(table), expected)


def test_embed_stage_with_the_default_model(cluster):
    from lakevec.utils.embedding_functions import DefaultEmbeddingFunction

    docs = pa.table({"id": ["a", "b"], "document": ["a lake of vectors", "ray data"]})
    table = pa.concat_tables(ray.get(lr.embed(ray.data.from_arrow(docs)).to_arrow_refs())).sort_by("id")
    local = np.asarray(DefaultEmbeddingFunction()(["a lake of vectors", "ray data"]), dtype=np.float32)
    np.testing.assert_allclose(_vectors(table), local, atol=1e-5)


def test_index_tiers_built_as_tasks_answer_like_a_local_build(root):
    table = _table(6000, dim=128, seed=7)  # int8 indexes
    lr.write(ray.data.from_arrow(table).repartition(3), root, "tiers", rows_per_fragment=1000)
    collection = lakevec.PersistentClient(root).get_collection("tiers")
    collection.delete(ids=[f"id{i}" for i in range(0, 6000, 7)])
    before = collection.version
    built = lr.build_indexes(collection, rows_per_index=2000)
    assert built["indexes"] == 3 and built["version"] == before + 1
    manifest = collection._engine.snapshot().manifest
    assert all(f.index is not None for f in manifest.fragments)
    assert len({f.index for f in manifest.fragments}) == 3
    assert len({f.index_scale for f in manifest.fragments}) == 1  # one scale: one query fits all
    live = [i for i in range(6000) if i % 7]
    vectors, ids = _vectors(table)[live], [f"id{i}" for i in live]
    queries = vectors[:40] + 0.01
    got = collection.query(query_embeddings=queries, n_results=10, include=[])["ids"]
    exact = _exact(vectors, ids, queries, 10)
    recall = np.mean([len(set(g) & set(e)) / 10 for g, e in zip(got, exact)])
    assert recall >= 0.95
    # the same rows indexed by a local build: the same answers, up to HNSW's misses
    local = lakevec.EphemeralClient().create_collection("local", embedding_function=None)
    local.add(ids=ids, embeddings=vectors)
    local.wait_for_index()
    theirs = local.query(query_embeddings=queries, n_results=10, include=[])["ids"]
    assert np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, theirs)]) >= 0.95
    assert lr.build_indexes(collection) == {"version": None, "indexes": 0, "rows": 0, "tasks": []}


def test_read_gives_the_live_rows_of_a_version(root):
    table = _table(1200)
    lr.write(ray.data.from_arrow(table).repartition(3), root, "readme", rows_per_fragment=300)
    collection = lakevec.PersistentClient(root).get_collection("readme")
    collection.delete(ids=[f"id{i}" for i in range(0, 1200, 5)])
    where = {"$and": [{"genre": {"$in": ["a", "b"]}}, {"year": {"$gte": 100}}]}
    got = pa.concat_tables(ray.get(lr.read(root, "readme", where=where).to_arrow_refs())).sort_by("id")
    expected = collection.to_arrow(where=where).sort_by("id")
    assert got.column_names == expected.column_names
    assert got.equals(expected)
    old = lr.read(root, "readme", version=1, include=["metadatas"])
    assert old.count() == 1200 and old.columns() == ["id", "genre", "year"]
    with pytest.raises(lakevec.errors.InvalidArgumentError):
        lr.read(root, "readme", include=["distances"])


def test_query_batch_on_ray_equals_the_local_fan_out(root):
    table = _table(4000, dim=32, seed=9)
    lr.write(ray.data.from_arrow(table).repartition(4), root, "batch", rows_per_fragment=500)
    collection = lakevec.PersistentClient(root).get_collection("batch")
    lr.build_indexes(collection, rows_per_index=1500)
    collection.add(ids=["tail1", "tail2"], embeddings=_vectors(table)[:2] + 0.5)  # an unindexed tail
    queries = _vectors(table)[::100] + 0.01
    for where in (None, {"genre": "b"}, {"year": {"$lt": 40}}):
        local = lr.query_batch(collection, queries, 5, where=where)
        remote = lr.query_batch(collection, queries, 5, where=where, engine="ray")
        assert local["ids"] == remote["ids"] and local["distances"] == remote["distances"]
        assert local["metadatas"] == remote["metadatas"]
        keep = [i for i in range(4000) if where is None or lakevec_filter(where, i)]
        exact = _exact(_vectors(table)[keep], [f"id{i}" for i in keep], queries, 5)
        recall = np.mean([len(set(g) & set(e)) / 5 for g, e in zip(local["ids"], exact)])
        assert recall >= 0.95
        assert all(len(r) == min(5, len(keep)) for r in local["ids"])
    with pytest.raises(lakevec.errors.InvalidArgumentError):
        lr.query_batch(collection, queries, 5, engine="dask")


def lakevec_filter(where: dict, i: int) -> bool:
    """The two filters of the batch-query test, evaluated in Python (the oracle)."""
    if "genre" in where:
        return ("a", "b", "c")[i % 3] == where["genre"]
    return i < where["year"]["$lt"]
