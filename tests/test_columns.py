"""A remote fragment's columns read by byte range (lakevec.lake.columns): footers first, then the
row groups a few result rows live in, or every row group, each matching a full read."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakevec.lake import columns
from lakevec.lake.columns import read_footers, read_groups, read_tables
from lakevec.lake.schema import ROW_GROUP_ROWS, flatten, write_parquet
from lakevec.lake.storage import Storage


def fragment(path, n: int, seed: int = 0) -> pa.Table:
    """A file laid out as lakevec writes fragments: ids, documents, a metadata struct, vectors."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, 8)).astype(np.float32)
    metadata = pa.StructArray.from_arrays(
        [pa.array(rng.integers(0, 100, n)), pa.array([None if i % 5 else f"c{i % 7}" for i in range(n)])],
        ["rank", "tag"],
    )
    table = pa.table(
        {
            "id": [f"id{i}" for i in range(n)],
            "document": [f"document {i} " * (i % 4) for i in range(n)],
            "uri": pa.nulls(n, pa.string()),
            "metadata": metadata,
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), 8),
            "_seq": np.arange(n, dtype=np.int64),
        }
    )
    with pa.OSFile(str(path), "wb") as sink:
        write_parquet(table, sink)
    return flatten(table)


class Recorder:
    """The storage's ranged reads, with every range asked for remembered."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.asked: list[tuple[str, int, int]] = []

    def __call__(self, paths: list[str], starts: list[int], ends: list[int]) -> list[bytes]:
        self.asked += list(zip(paths, starts, ends))
        return self.storage.read_ranges(paths, starts, ends)


@pytest.fixture(autouse=True)
def small_tail(monkeypatch):
    monkeypatch.setattr(columns, "TAIL_BYTES", 4096)  # the files are small: a tail is not all of one


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3 * ROW_GROUP_ROWS + 5), min_size=1, max_size=3), seed=st.integers(0, 99)
)
def test_rows_and_tables_match_a_full_read(tmp_path_factory, sizes, seed):
    root = tmp_path_factory.mktemp("c")
    paths = [str(root / f"{i}.parquet") for i in range(len(sizes))]
    expected = [fragment(p, n, seed + i) for i, (p, n) in enumerate(zip(paths, sizes))]
    read = Recorder(Storage(str(root)))
    items = read_footers(read, paths, [(root / f"{i}.parquet").stat().st_size for i in range(len(sizes))])
    assert [item.num_rows for item in items] == sizes
    assert len(read.asked) == len(paths)  # one GET a file
    # a few rows: only their row groups are read, in one batch
    rng = np.random.default_rng(seed)
    asked = [(item, rng.integers(0, item.num_rows, 3)) for item in items]
    before = len(read.asked)
    read_groups(read, [(item, np.unique(item.group_of(rows)).tolist()) for item, rows in asked])
    fetched = sum(b - a for _, a, b in read.asked[before:])
    for (item, rows), table in zip(asked, expected):
        for row in rows.tolist():
            g = int(item.group_of(np.int64(row)))
            group = item.groups[g]
            at = row - int(item.starts[g])
            for name in table.column_names:
                assert group[name][at].as_py() == table.column(name)[row].as_py()
    everything = sum(b - a for a, b in [r for item in items for r in item.missing(None)])
    # a row group no row asked for, and not all in the tail, is left unread
    left = [
        item.missing(sorted(set(range(item.footer.num_row_groups)) - set(item.group_of(rows).tolist())))
        for item, rows in asked
    ]
    if any(b > a for ranges in left for a, b in ranges):
        assert fetched < everything, (fetched, everything)
    # every column: equal to a full read, and no vector byte was read
    for item, table in zip(items, read_tables(read, items)):
        assert table.equals(flatten(pq.read_table(item.path)))
    vectors = [
        (path, g.column(j).data_page_offset, g.column(j).data_page_offset + g.column(j).total_compressed_size)
        for path, item in zip(paths, items)
        for g in (item.footer.row_group(i) for i in range(item.footer.num_row_groups))
        for j in range(g.num_columns)
        if g.column(j).path_in_schema.startswith("embedding")
    ]
    for path, a, b in read.asked[len(paths) :]:  # past the tails (which may hold vectors)
        assert not any(p == path and a < vb and va < b for p, va, vb in vectors), (a, b)
