"""The lakevec command, run as a subprocess on real temporary directories."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import lakevec


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "lakevec", *args], capture_output=True, text=True, timeout=300
    )
    assert (out.returncode == 0) == ok, out.stderr
    return out


def test_import_info_versions_compact_vacuum_export(tmp_path):
    root, src, out = str(tmp_path / "root"), tmp_path / "in.parquet", tmp_path / "out.parquet"
    n = 500
    rng = np.random.default_rng(0)
    pq.write_table(
        pa.table(
            {
                "id": [f"r{i}" for i in range(n)],
                "document": [f"doc {i}" for i in range(n)],
                "embedding": pa.FixedSizeListArray.from_arrays(
                    pa.array(rng.random(n * 4, dtype=np.float32)), 4
                ),
                "genre": [["a", "b"][i % 2] for i in range(n)],
            }
        ),
        src,
    )
    assert "read 500 rows" in run("import", root, "docs", str(src)).stdout
    col = lakevec.PersistentClient(root).get_collection("docs", embedding_function=None)
    col.delete(where={"genre": "a"})
    listing = run("info", root).stdout
    assert "docs" in listing and "250" in listing
    assert "dead_rows" in run("info", root, "docs").stdout
    assert "delete" in run("versions", root, "docs").stdout
    assert "fragments_after: 1" in run("compact", root, "docs").stdout
    dry = run("vacuum", root, "docs", "--older-than-days", "0", "--dry-run").stdout
    assert "would delete" in dry
    assert "deleted" in run("vacuum", root, "docs", "--older-than-days", "0").stdout
    run("export", root, "docs", str(out))
    exported = pq.read_table(out)
    assert sorted(exported.column("id").to_pylist()) == sorted(f"r{i}" for i in range(1, n, 2))
    assert set(exported.column("genre").to_pylist()) == {"b"}


def test_errors_are_one_line_and_exit_nonzero(tmp_path):
    out = run("info", str(tmp_path / "root"), "missing", ok=False)
    assert out.stderr.startswith("lakevec: error:") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = run("import", str(tmp_path / "root"), "docs", str(tmp_path / "nope.parquet"), ok=False)
    assert "Traceback" not in out.stderr
    debug = run("--debug", "info", str(tmp_path / "root"), "missing", ok=False)
    assert "Traceback" in debug.stderr


def test_migrate_chroma(tmp_path):
    import chromadb

    chroma_dir, root = str(tmp_path / "chroma"), str(tmp_path / "root")
    source = chromadb.PersistentClient(path=chroma_dir)
    rng = np.random.default_rng(1)
    a = source.create_collection("alpha", configuration={"hnsw": {"space": "cosine", "ef_search": 50}})
    a.add(
        ids=[f"a{i}" for i in range(120)],
        embeddings=rng.random((120, 5)),
        documents=[f"alpha {i}" for i in range(120)],
        metadatas=[{"k": i, "even": i % 2 == 0} for i in range(120)],
    )
    b = source.create_collection("beta", metadata={"owner": "me"}, embedding_function=None)
    b.add(ids=["x", "y"], embeddings=[[1.0, 2.0], [3.0, 4.0]])
    del source
    out = run("migrate-chroma", chroma_dir, root)
    assert "copied alpha: 120 records" in out.stdout and "copied beta: 2 records" in out.stdout
    client = lakevec.PersistentClient(root)
    alpha = client.get_collection("alpha", embedding_function=None)
    expected = chromadb.PersistentClient(path=chroma_dir).get_collection("alpha")
    want = expected.get(include=["embeddings", "documents", "metadatas"])
    got = alpha.get(ids=want["ids"], include=["embeddings", "documents", "metadatas"])
    assert got["ids"] == want["ids"] and got["documents"] == want["documents"]
    assert got["metadatas"] == want["metadatas"]
    np.testing.assert_allclose(got["embeddings"], want["embeddings"], rtol=1e-6)
    assert alpha.configuration["hnsw"]["space"] == "cosine"
    assert client.get_collection("beta", embedding_function=None).metadata == {"owner": "me"}
