"""Collections and query results as Arrow / Polars / pandas tables, and SQL over collections."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import lakevec


def _filled(client):
    col = client.create_collection("my-docs", embedding_function=None)
    col.add(
        ids=["a", "b", "c", "d"],
        embeddings=[[1, 2], [3, 4], [5, 6], [7, 8]],
        metadatas=[{"year": 2020, "genre": "jazz"}, {"year": 2024, "tags": ["x"]}, {"year": "old"}, None],
        documents=["d1", None, "d3", "d4"],
    )
    col.update(ids=["a"], metadatas=[{"year": 2021}])
    col.delete(ids=["d"])
    return col


def test_to_arrow_types_and_live_rows(client):
    col = _filled(client)
    table = col.to_arrow()
    assert table.column_names == ["id", "document", "uri", "genre", "tags", "year", "year::str", "embedding"]
    assert table.schema.field("year").type == pa.int64()
    assert table.schema.field("tags").type == pa.list_(pa.string())
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 2)
    assert table.column("id").to_pylist() == ["a", "b", "c"]  # insertion order; d is deleted
    assert table.column("year").to_pylist() == [2021, 2024, None]
    assert table.column("year::str").to_pylist() == [None, None, "old"]
    got = col.get(include=["embeddings"])
    np.testing.assert_array_equal(
        np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), got["embeddings"]
    )
    assert col.to_arrow(where={"year": {"$gte": 2021}}, include=[]).column_names == ["id"]
    assert col.to_arrow(where={"year": {"$gte": 2021}}, include=[]).column("id").to_pylist() == ["a", "b"]
    assert col.to_polars(where_document={"$contains": "d"})["id"].to_list() == ["a", "c"]
    assert list(col.to_pandas()["id"]) == ["a", "b", "c"]


def test_sql_sees_every_collection_as_a_view(client):
    col = _filled(client)
    other = client.create_collection("ratings", embedding_function=None)
    other.add(
        ids=["r1", "r2"],
        embeddings=[[0, 0], [0, 0]],
        metadatas=[{"doc": "a", "stars": 5}, {"doc": "c", "stars": 2}],
    )
    rows = client.sql(
        'SELECT d.id, r.stars FROM "my-docs" d JOIN ratings r ON r.doc = d.id ORDER BY d.id'
    ).fetchall()
    assert rows == [("a", 5), ("c", 2)]
    ids = client.sql('SELECT id FROM "my-docs" WHERE year >= ? ORDER BY id', [2021]).pl()["id"].to_list()
    assert ids == col.get(where={"year": {"$gte": 2021}}, include=[])["ids"]


def test_sql_results_through_each_documented_call(client):
    """The calls client.sql's docstring names, on the DuckDB installed (2.x has no fetchone()
    and its .arrow() is a reader)."""
    _filled(client)
    rel = client.sql('SELECT id, year FROM "my-docs" ORDER BY id')
    expected = [("a", 2021), ("b", 2024), ("c", None)]
    assert rel.fetchall() == expected
    assert rel.limit(1).fetchall() == expected[:1]
    assert list(rel.pl().iter_rows()) == expected
    assert rel.to_arrow_table().to_pylist() == [{"id": i, "year": y} for i, y in expected]
    arrow = rel.arrow()
    table = arrow.read_all() if isinstance(arrow, pa.RecordBatchReader) else arrow
    assert table.column("id").to_pylist() == ["a", "b", "c"]
    assert list(rel.df()["id"]) == ["a", "b", "c"]


def test_query_result_long_format(collection):
    collection.add(
        ids=["a", "b"], embeddings=[[0, 0], [1, 1]], metadatas=[{"k": 1}, {"k": "s"}], documents=["x", "y"]
    )
    res = collection.query(query_embeddings=[[0, 0], [1, 1]], n_results=2)
    assert isinstance(res, dict) and res["ids"] == [["a", "b"], ["b", "a"]]
    table = res.to_arrow()
    assert table.column_names == ["query_index", "rank", "id", "distance", "document", "k", "k::str"]
    assert table.column("query_index").to_pylist() == [0, 0, 1, 1]
    assert table.column("rank").to_pylist() == [0, 1, 0, 1]
    assert table.column("distance").to_pylist() == [0.0, 2.0, 0.0, 2.0]
    assert res.to_polars().height == 4 and len(res.to_pandas()) == 4


def test_empty_collection_tables():
    col = lakevec.EphemeralClient().create_collection("empty", embedding_function=None)
    assert col.to_arrow().num_rows == 0
    assert col.query(query_embeddings=[[1, 2]], n_results=3).to_arrow().num_rows == 0


def test_add_table_round_trips_from_arrow_polars_pandas_and_files(client, tmp_path):
    import polars as pl
    import pyarrow.parquet as pq

    source = pa.table(
        {
            "id": ["a", "b", "c"],
            "document": ["x", None, "z"],
            "embedding": pa.array([[1, 2], [3, 4], [5, 6]], pa.list_(pa.float32(), 2)),
            "year": pa.array([2020, None, 2022], pa.int64()),
            "genre": ["jazz", "rock", None],
        }
    )
    inputs = {
        "arrow": source,
        "polars": pl.from_arrow(source),
        "pandas": source.to_pandas(),
        "lazy": pl.from_arrow(source).lazy(),
        "reader": source.to_reader(max_chunksize=1),
    }
    pq.write_table(source, tmp_path / "src.parquet")
    inputs["parquet"] = str(tmp_path / "src.parquet")
    for name, data in inputs.items():
        col = client.create_collection(f"t-{name}", embedding_function=None)
        assert col.add_table(data, batch_size=2) == 3
        out = col.to_arrow()
        assert out.column("id").to_pylist() == ["a", "b", "c"], name
        assert out.column("document").to_pylist() == ["x", None, "z"], name
        assert out.column("year").to_pylist() == [2020, None, 2022], name
        assert out.column("genre").to_pylist() == ["jazz", "rock", None], name
        if name != "pandas":  # pandas itself turns an int column with a null into float64
            assert out.schema.field("year").type == pa.int64(), name
        assert out.column("embedding").to_pylist() == [[1, 2], [3, 4], [5, 6]], name


def test_upsert_table_and_bad_tables(collection):
    collection.add(ids=["a"], embeddings=[[0, 0]], metadatas=[{"k": 1}])
    collection.upsert_table(pa.table({"id": ["a", "b"], "embedding": [[1.0, 1.0], [2.0, 2.0]], "k": [5, 6]}))
    assert collection.get(include=["metadatas"])["metadatas"] == [{"k": 5}, {"k": 6}]
    import pytest

    from lakevec.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        collection.add_table(pa.table({"key": ["x"]}))
    with pytest.raises(InvalidArgumentError):
        collection.add_table(pa.table({"id": ["x"], "embedding": [[1.0]]}))  # wrong dimension
    with pytest.raises(InvalidArgumentError):
        collection.add_table(pa.table({"id": ["x", "y"], "embedding": [[1.0, 2.0], [1.0]]}))
    assert collection.count() == 2


def test_duckdb_and_scan_match_to_arrow(client):
    import polars as pl

    col = _filled(client)
    col.add(ids=["e"], embeddings=[[9, 9]], metadatas=[{"genre": "pop", "year": 1999}])
    expected = col.to_arrow()
    got = col.duckdb().arrow()
    got = got.read_all() if isinstance(got, pa.RecordBatchReader) else got
    assert got.to_pylist() == expected.to_pylist()
    lazy = col.scan()
    assert isinstance(lazy, pl.LazyFrame)
    frame = lazy.filter(pl.col("year") >= 2020).select("id", "year").collect()
    assert frame["id"].to_list() == col.get(where={"year": {"$gte": 2020}}, include=[])["ids"]


def test_where_sql_matches_where_and_is_safe(collection):
    import pytest

    from lakevec.errors import InvalidArgumentError
    from tests.conftest import storage_state

    collection.add(
        ids=[f"r{i}" for i in range(12)],
        embeddings=[[i, 0] for i in range(12)],
        metadatas=[{"year": 2015 + i, "genre": ["a", "b", "c"][i % 3]} for i in range(12)],
        documents=[f"doc {i}" for i in range(12)],
    )
    where = {"$and": [{"year": {"$gte": 2020}}, {"genre": {"$in": ["a", "b"]}}]}
    expected = collection.get(where=where, include=[])["ids"]
    sql = "year >= 2020 AND genre IN ('a', 'b')"
    assert collection.get(where_sql=sql, include=[])["ids"] == expected
    assert (
        collection.get(where={"year": {"$gte": 2020}}, where_sql="genre <> 'c'", include=[])["ids"]
        == expected
    )
    assert collection.to_arrow(where_sql=sql, include=[]).column("id").to_pylist() == expected
    hits = collection.query(query_embeddings=[[0, 0]], n_results=3, where_sql=sql)
    assert hits["ids"] == collection.query(query_embeddings=[[0, 0]], n_results=3, where=where)["ids"]
    assert collection.get(where_sql="document LIKE '%1%' AND id <> 'r1'", include=[])["ids"] == ["r10", "r11"]
    before = storage_state(collection)
    for bad in [
        "year > (SELECT 1)",
        "1=1; DROP TABLE t",
        "year > 1 ORDER BY year",
        "year IN (SELECT year FROM read_csv('/etc/passwd'))",
        "length(read_text('/etc/passwd')) > 0",
        "no_such_column = 1",
        "",
    ]:
        with pytest.raises(InvalidArgumentError):
            collection.delete(where_sql=bad)
    assert storage_state(collection) == before
    assert collection.delete(where_sql="year < 2017") == {"deleted": 2}


def test_streaming_import_memory_is_bounded(tmp_path):
    """1,000,000 rows x 64 dims (256 MB of vectors) streamed in 25k-row batches: peak RSS grows by
    well under the data's size (ids stay in memory for add's duplicate check; vectors do not)."""
    import subprocess
    import sys
    from pathlib import Path

    child = Path(__file__).with_name("stream_import_child.py")
    out = subprocess.run(
        [sys.executable, str(child), str(tmp_path / "db"), "1000000", "64", "25000"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    rows, count, base_mb, peak_mb, _seconds = out.stdout.split()
    assert int(rows) == 1_000_000 and int(count) == 1_025_000
    assert int(peak_mb) - int(base_mb) < 128, out.stdout


def test_add_table_typed_columns_store_like_add(tmp_path):
    """add_table's Arrow path (no dicts) stores exactly what add() stores from the same values."""
    import numpy as np

    client = lakevec.PersistentClient(str(tmp_path / "db"))
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "embedding": pa.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], pa.list_(pa.float32())),
            "small": pa.array([1, None, 3], pa.int8()),
            "ratio": pa.array([0.5, 1.5, None], pa.float32()),
            "genre": pa.array(["x", "y", "x"]).dictionary_encode(),
            "tags": pa.array([["p", "q"], None, ["r"]]),
            "flag": pa.array([True, False, None]),
        }
    )
    fast = client.create_collection("fast", embedding_function=None)
    fast.add_table(table)
    slow = client.create_collection("slow", embedding_function=None)
    slow.add(
        ids=["a", "b", "c"],
        embeddings=np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32),
        metadatas=[
            {"small": 1, "ratio": 0.5, "genre": "x", "tags": ["p", "q"], "flag": True},
            {"ratio": 1.5, "genre": "y", "flag": False},
            {"small": 3, "genre": "x", "tags": ["r"]},
        ],
    )
    assert fast.get()["metadatas"] == slow.get()["metadatas"]
    assert fast.get(where={"tags": {"$contains": "r"}})["ids"] == ["c"]
    assert fast.to_arrow().schema == slow.to_arrow().schema


@pytest.mark.parametrize(
    "column, message",
    [
        (pa.array([1.0, float("nan")]), "finite"),
        (pa.array([2**64 - 1, 1], pa.uint64()), "64 bits"),
        (pa.array([["a"], []]), "non-empty"),
        (pa.array([["a"], ["b", None]]), "only str"),
    ],
)
def test_add_table_bad_typed_metadata_is_refused(tmp_path, column, message):
    col = lakevec.PersistentClient(str(tmp_path / "db")).create_collection("bad", embedding_function=None)
    table = pa.table({"id": ["a", "b"], "embedding": pa.array([[1.0], [2.0]]), "m": column})
    with pytest.raises(lakevec.errors.InvalidArgumentError, match=message):
        col.add_table(table)
    assert col.count() == 0


def test_add_table_failing_batch_keeps_earlier_batches_only(tmp_path):
    """Batches commit in order while the next one is validated: a bad batch stops the import
    there; the batches before it are committed, nothing of it or after it is."""
    import pytest

    from lakevec.errors import InvalidArgumentError

    col = lakevec.PersistentClient(str(tmp_path)).create_collection("col", embedding_function=None)
    emb = np.ones((30, 4), dtype=np.float32)
    emb[25, 1] = np.nan  # in the third batch of 10
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(30)],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 4),
        }
    )
    with pytest.raises(InvalidArgumentError):
        col.add_table(table, batch_size=10)
    assert sorted(col.get()["ids"], key=lambda s: int(s[1:])) == [f"r{i}" for i in range(20)]
    assert col.add_table(table.slice(20, 5), batch_size=10) == 5
    assert col.count() == 25


def test_large_batch_is_written_as_parallel_fragments(tmp_path, monkeypatch):
    """A batch over PART_BYTES is split into fragments encoded side by side; reads see one table."""
    from lakevec.write import commit

    monkeypatch.setattr(commit, "PART_BYTES", 4 * 4 * 100)  # 100 rows of dim 4 per part
    monkeypatch.setattr(commit, "WRITERS", 2)
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("col", embedding_function=None)
    emb = np.random.default_rng(0).random((301, 4), dtype=np.float32)
    col.add(ids=[f"r{i}" for i in range(301)], embeddings=emb, metadatas=[{"i": i} for i in range(301)])
    manifest = col._engine.snapshot().manifest
    assert [f.rows for f in manifest.fragments] == [151, 150]
    got = col.get(ids=["r0", "r150", "r151", "r300"], include=["embeddings", "metadatas"])
    assert [m["i"] for m in got["metadatas"]] == [0, 150, 151, 300]
    assert np.allclose(got["embeddings"], emb[[0, 150, 151, 300]])
    reopened = lakevec.PersistentClient(str(tmp_path)).get_collection("col")
    res = reopened.query(query_embeddings=emb[[300]], n_results=1)
    assert res["ids"] == [["r300"]]


@pytest.mark.parametrize(
    "ids, error, message",
    [
        (pa.array(["a", "b", "a"]), "DuplicateIDError", "duplicates of: a"),
        (pa.array(["a", "", "c"]), "InvalidArgumentError", "Empty ID"),
        (pa.array(["a", None, "c"]), "InvalidArgumentError", "got None"),
        (pa.array([1, 2, 3]), "InvalidArgumentError", "got 1"),
        (pa.array(["a", "b", "c"], pa.string_view()), None, None),
        (pa.array(["a", "b", "c"], pa.large_string()).dictionary_encode(), None, None),
    ],
)
def test_add_table_id_column_is_checked_like_add(tmp_path, ids, error, message):
    """A table's ids are checked with Arrow compute; a bad column gets add's error for its value."""
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("col", embedding_function=None)
    table = pa.table({"id": ids, "embedding": pa.array([[1.0], [2.0], [3.0]]), "document": ["x", None, "z"]})
    if error is None:
        assert col.add_table(table) == 3
        got = col.get(include=["documents"])
        assert sorted(zip(got["ids"], got["documents"])) == [("a", "x"), ("b", None), ("c", "z")]
        return
    with pytest.raises(getattr(lakevec.errors, error), match=message):
        col.add_table(table)
    assert col.count() == 0


def test_rebatch_keeps_large_chunks_and_joins_small_ones():
    """Input chunks of at least half a batch pass through without a copy; small ones are joined."""
    from lakevec.write.table_input import rebatch

    def chunks(*sizes):
        start = 0
        for n in sizes:
            yield pa.record_batch({"x": np.arange(start, start + n)})
            start += n

    big = list(chunks(60, 60, 130))
    out = list(rebatch(iter(big), 100))
    assert [b.num_rows for b in out] == [60, 60, 100, 30]
    assert out[0].column(0).buffers()[1].address == big[0].column(0).buffers()[1].address
    out = list(rebatch(chunks(*[10] * 25), 100))
    assert [b.num_rows for b in out] == [100, 100, 50]
    assert np.concatenate([b.column(0).to_numpy() for b in out]).tolist() == list(range(250))


def test_add_table_from_a_parquet_file_reads_its_row_groups_ahead(tmp_path):
    """A Parquet file imports a row group at a time (the next one decoded ahead); a bad row
    group stops the import there, its predecessors committed, and the reader thread ends."""
    import threading

    import pyarrow.parquet as pq

    from lakevec.errors import InvalidArgumentError

    emb = np.ones((30, 4), dtype=np.float32)
    emb[25, 1] = np.nan
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(30)],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 4),
            "k": list(range(30)),
        }
    )
    path = str(tmp_path / "in.parquet")
    pq.write_table(table, path, row_group_size=10)
    col = lakevec.PersistentClient(str(tmp_path / "db")).create_collection("col", embedding_function=None)
    with pytest.raises(InvalidArgumentError):
        col.add_table(path, batch_size=10)
    assert col.count() == 20
    assert not [t for t in threading.enumerate() if t.name.startswith("lakevec-read")]
    pq.write_table(table.slice(0, 20), path, row_group_size=7)
    other = lakevec.PersistentClient(str(tmp_path / "db2")).create_collection("col", embedding_function=None)
    assert other.add_table(path) == 20
    assert sorted(m["k"] for m in other.get(include=["metadatas"])["metadatas"]) == list(range(20))
