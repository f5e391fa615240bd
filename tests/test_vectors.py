"""Reading a few rows' vectors straight from fragment files (lakevec.lake.vectors)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakevec.lake.schema import embeddings_of, write_parquet
from lakevec.lake.storage import Storage
from lakevec.lake.vectors import RangedVectors, RowVectors, take_ranged


def fragment(path, n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    table = pa.table(
        {
            "id": [f"id{i}" for i in range(n)],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
            "_seq": np.arange(n),
        }
    )
    with pa.OSFile(str(path), "wb") as sink:
        write_parquet(table, sink)
    return emb


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 70_000),
    dim=st.sampled_from([1, 3, 384, 1536]),
    seed=st.integers(0, 2**16),
)
def test_take_matches_a_full_read(tmp_path_factory, n, dim, seed):
    if n * dim > 8_000_000:  # 32 MB of vectors: several row groups at every dimension up to 384
        n = 8_000_000 // dim
    path = tmp_path_factory.mktemp("v") / "f.parquet"
    emb = fragment(path, n, dim, seed)
    reader = RowVectors.open(str(path))
    assert reader is not None
    rows = np.random.default_rng(seed).integers(0, n, 50)
    rows = np.concatenate([rows, [0, n - 1]])
    np.testing.assert_array_equal(reader.take(rows), emb[rows])
    np.testing.assert_array_equal(reader.all(), emb)
    np.testing.assert_array_equal(embeddings_of(pq.read_table(path)), emb)
    # a remote reader locates the same rows from the footer alone, as byte ranges
    ranged = RangedVectors.from_footer(
        pq.read_metadata(path), Storage(str(path.parent)).read_ranges, str(path)
    )
    assert ranged is not None
    np.testing.assert_array_equal(ranged.take(rows), emb[rows])


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "zstd"},
        {"use_dictionary": True, "compression": "none"},
        {"compression": "none", "nulls": True},
    ],
)
def test_other_layouts_are_refused_not_misread(tmp_path, options):
    """Files not written the way lakevec writes them get no reader (they are decoded instead)."""
    emb = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 8)
    if options.pop("nulls", False):
        mask = pa.array(np.arange(1000) % 7 == 0)
        column = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 8, mask=mask)
    path = tmp_path / "f.parquet"
    pq.write_table(pa.table({"embedding": column}), path, **options)
    assert RowVectors.open(str(path)) is None
    assert (
        RangedVectors.from_footer(pq.read_metadata(path), Storage(str(tmp_path)).read_ranges, str(path))
        is None
    )


def test_ranged_rows_of_many_files_in_one_batch(tmp_path):
    """A query's candidates spread over files come back in the order asked, each file's rows
    located by its own footer; a file not written with one vector page per row group (pyarrow's
    default pages) gets no ranged reader."""
    storage = Storage(str(tmp_path))
    files = []
    for i, n in enumerate([20_000, 3, 9_000]):
        emb = fragment(tmp_path / f"{i}.parquet", n, 16, seed=i)
        reader = RangedVectors.from_footer(
            pq.read_metadata(tmp_path / f"{i}.parquet"), storage.read_ranges, str(tmp_path / f"{i}.parquet")
        )
        files.append((reader, emb))
    rng = np.random.default_rng(3)
    asked = [(reader, rng.integers(0, len(emb), 40)) for reader, emb in files]
    for (_, emb), (_, rows), got in zip(files, asked, take_ranged(asked)):
        np.testing.assert_array_equal(got, emb[rows])
    emb = np.ones((10, 4), dtype=np.float32)
    plain = pa.table({"embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 4)})
    pq.write_table(plain, tmp_path / "plain.parquet", compression="none")
    assert (
        RangedVectors.from_footer(pq.read_metadata(tmp_path / "plain.parquet"), storage.read_ranges, "x")
        is None
    )


def test_garbage_is_refused(tmp_path):
    path = tmp_path / "f.parquet"
    path.write_bytes(b"not parquet at all" * 100)
    assert RowVectors.open(str(path)) is None
