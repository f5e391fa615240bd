"""The lake layer on each backend: create-if-absent, the version log, and the open file format."""

from __future__ import annotations

import json
import threading

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import lakevec
from lakevec.lake.log import VersionLog
from lakevec.lake.storage import Storage


@pytest.fixture
def storage(root):
    return Storage(root)


def test_put_if_absent_has_one_winner(storage):
    path = storage.join("race", "v1.json")
    wins: list[int] = []

    def attempt(i: int) -> None:
        if storage.put_if_absent(path, str(i).encode()):
            wins.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert storage.read_bytes(path) == str(wins[0]).encode()
    assert not storage.put_if_absent(path, b"later")
    assert storage.read_bytes(path) == str(wins[0]).encode()
    assert [n for n in storage.listdir(storage.join("race")) if n.endswith(".tmp")] == []


def test_version_log_finds_head_without_hint(storage):
    log = VersionLog(storage, storage.join("log"))
    assert log.latest() is None
    for v in range(5):
        assert log.try_commit(v, {"v": v})
    assert not log.try_commit(3, {"v": "again"})
    assert log.latest() == 4 and log.read(3) == {"v": 3}
    storage.delete(storage.join("log", "_latest"))
    assert VersionLog(storage, storage.join("log")).latest() == 4  # listing, once
    storage.overwrite(storage.join("log", "_latest"), b"1")  # a stale hint: probe forward
    assert VersionLog(storage, storage.join("log")).latest() == 4


def _live_fragments(col):
    """Read the collection the way any engine can: the manifest JSON, Parquet, Arrow IPC."""
    engine = col._engine
    head = engine.log.latest()
    manifest = json.loads(engine.storage.read_bytes(engine.log.path(head)))
    return engine.directory, manifest["fragments"]


def test_fragments_are_plain_parquet_for_duckdb_and_polars(tmp_path):
    col = lakevec.PersistentClient(str(tmp_path)).create_collection("open", embedding_function=None)
    col.add(
        ids=["a", "b", "c"],
        embeddings=[[1, 0], [0, 1], [1, 1]],
        metadatas=[{"genre": "jazz", "year": 1959}, {"genre": "rock"}, {"year": 2001}],
        documents=["kind of blue", "x", None],
    )
    col.upsert(ids=["b"], embeddings=[[5, 5]], metadatas=[{"genre": "pop"}])
    col.delete(ids=["c"])
    directory, fragments = _live_fragments(col)
    con = duckdb.connect()
    frames = []
    for f in fragments:
        dead = set()
        if f["deletes"]:
            dead = set(pa.ipc.open_file(f"{directory}/{f['deletes']}").read_all().column("row").to_pylist())
        rows = con.sql(
            "SELECT file_row_number, id, document, metadata.genre AS genre, embedding, _seq "
            f"FROM read_parquet('{directory}/{f['path']}', file_row_number=true)"
        ).fetchall()
        frames += [r[1:] for r in rows if r[0] not in dead]
    frames.sort(key=lambda r: r[-1])
    got = col.get(include=["documents", "metadatas", "embeddings"])
    assert [r[0] for r in frames] == got["ids"] == ["a", "b"]
    assert [r[1] for r in frames] == got["documents"]
    assert [r[2] for r in frames] == [m.get("genre") for m in got["metadatas"]]
    np.testing.assert_array_equal(np.array([r[3] for r in frames]), got["embeddings"])

    polars_ids = pl.concat(
        [pl.read_parquet(f"{directory}/{f['path']}").select("id") for f in fragments], how="vertical"
    )["id"].to_list()
    assert set(got["ids"]) <= set(polars_ids)


def test_written_files_start_their_writeback_and_land_whole(tmp_path, monkeypatch):
    """create() and write_new() stream through WritebackFile, which starts each chunk's write-back
    as it goes (Linux); the bytes land in order whatever the chunking."""
    from lakevec.lake import storage as storage_module

    monkeypatch.setattr(storage_module, "WRITE_CHUNK", 1000)
    store = storage_module.Storage(str(tmp_path))
    payload = bytes(range(256)) * 40  # 10,240 bytes: ten chunks and a tail
    store.write_new(str(tmp_path / "a.bin"), payload)
    assert (tmp_path / "a.bin").read_bytes() == payload
    with store.create(str(tmp_path / "b.bin")) as sink:
        for start in range(0, len(payload), 777):
            sink.write(pa.py_buffer(payload[start : start + 777]))
        assert sink.tell() == len(payload)
    assert (tmp_path / "b.bin").read_bytes() == payload
