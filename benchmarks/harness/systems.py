"""One adapter per system, so every workload calls each the same way.

Rows are named ``r<i>``; searches return row numbers. Each system gets its data in the form its
own API takes (lists for the Chroma API, an Arrow table for LanceDB, a numpy array for usearch),
prepared outside the clock. Settings: lakevec and Chroma at their defaults (l2, M 16,
ef_construction 100, ef_search 100); raw usearch at the same M and ef; LanceDB at its defaults
(IVF_PQ index, nprobes 20, no refine) and tuned along its own knobs.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow as pa

from benchmarks.common import dir_bytes
from benchmarks.harness.datasets import DIM

#: search settings swept for the recall / QPS curve (ef_search, or LanceDB's nprobes)
EF_CURVE = (10, 20, 40, 80, 160, 320, 640, 1280)
#: LanceDB's IVF_PQ: nprobes changed nothing at these sizes (measured: recall 0.486 at 1, 5 and 40
#: probes on 10k rows), the exact re-rank of refine_factor x k PQ candidates is what buys recall
REFINE_CURVE = (1, 2, 5, 10, 30, 100)


def rows(ids) -> list[int]:
    return [int(i[1:]) for i in ids]


def sel_clause(s: int) -> dict:
    return {"sel": {"$lt": s}}


class ChromaAPI:
    """lakevec and Chroma share the collection API, so they share this adapter."""

    stores = True
    name = "chromadb"
    curve = EF_CURVE
    default = 100
    knob = "ef_search"

    def client(self, path: str):
        import chromadb

        return chromadb.PersistentClient(path, settings=chromadb.Settings(anonymized_telemetry=False))

    def create(self, path: str) -> None:
        self.path = path
        self.col = self.client(path).create_collection("bench", embedding_function=None)

    def open(self, path: str) -> None:
        self.path = path
        self.col = self.client(path).get_collection("bench", embedding_function=None)

    def prepare(self, ds, start: int, end: int):
        metas = [{"sel": int(s), "cat": str(c)} for s, c in zip(ds.sel[start:end], ds.cat[start:end])]
        return (ds.ids[start:end], ds.vectors[start:end], metas, ds.documents[start:end])

    def add(self, batch) -> None:
        ids, x, metas, docs = batch
        self.col.add(ids=ids, embeddings=x, metadatas=metas, documents=docs)

    def finish(self) -> None:
        pass

    def tune(self, setting) -> None:
        self.col.modify(configuration={"hnsw": {"ef_search": setting}})
        # Chroma 1.5.9 applies a new ef_search only when the collection's index is loaded again
        # (measured: recall unchanged at ef 10 until the client is recreated)
        from chromadb.api.shared_system_client import SharedSystemClient

        # stop the old system first: clearing the cache alone kept every loaded index in memory
        # (the 1M run was killed at 19.6 GB during this sweep)
        for system in list(SharedSystemClient._identifier_to_system.values()):
            system.stop()
        SharedSystemClient.clear_system_cache()
        self.col = None
        self.open(self.path)

    def search(self, q: np.ndarray, k: int, sel: int | None = None) -> list[int]:
        where = None if sel is None else sel_clause(sel)
        return rows(self.col.query(query_embeddings=q[None], n_results=k, where=where, include=[])["ids"][0])

    def search_batch(self, q: np.ndarray, k: int) -> list[list[int]]:
        return [rows(r) for r in self.col.query(query_embeddings=q, n_results=k, include=[])["ids"]]

    def get(self, cat: str) -> int:
        return len(self.col.get(where={"cat": cat}, include=["metadatas"])["ids"])

    def disk_bytes(self) -> int:
        return dir_bytes(self.path)


class Lakevec(ChromaAPI):
    name = "lakevec"

    def client(self, path: str):
        import lakevec

        return lakevec.PersistentClient(path)

    def finish(self) -> None:
        self.col.wait_for_index()

    def tune(self, setting) -> None:
        self.col.modify(configuration={"hnsw": {"ef_search": setting}})

    def vacuumed_bytes(self) -> int:
        """Disk once superseded files (index files replaced by later folds, kept for reads of
        older versions) are gone: what ``vacuum`` leaves with no retention window."""
        from datetime import timedelta

        self.col.vacuum(older_than=timedelta(0))
        return dir_bytes(self.path)


class LanceDB:
    name = "lancedb"
    stores = True
    curve = REFINE_CURVE
    default = None  # nprobes 20, no refine
    knob = "refine_factor (nprobes 50)"

    def create(self, path: str) -> None:
        os.environ.setdefault("RUST_LOG", "error")
        import lancedb

        options = None
        if path.startswith("s3://"):  # the benchmark's S3 server (moto on 127.0.0.1)
            options = {
                "endpoint": os.environ["AWS_ENDPOINT_URL"],
                "allow_http": "true",
                "region": "us-east-1",
            }
        self.path, self.tbl, self.setting = path, None, None
        self.db = lancedb.connect(path, storage_options=options)

    def open(self, path: str) -> None:
        self.create(path)
        self.tbl = self.db.open_table("bench")

    def prepare(self, ds, start: int, end: int):
        return pa.table(
            {
                "id": ds.ids[start:end],
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(ds.vectors[start:end].reshape(-1)), DIM),
                "document": ds.documents[start:end],
                "sel": ds.sel[start:end],
                "cat": ds.cat[start:end],
            }
        )

    def add(self, batch) -> None:
        if self.tbl is None:
            self.tbl = self.db.create_table("bench", batch)
        else:
            self.tbl.add(batch)

    def finish(self) -> None:
        from lancedb.index import IvfPq

        if self.tbl.count_rows() >= 5_000:  # fewer rows than IVF_PQ trains on: flat search
            self.tbl.create_index("vector", config=IvfPq(distance_type="l2"))

    def tune(self, setting) -> None:
        self.setting = setting

    def _query(self, q, k: int):
        query = self.tbl.search(q).distance_type("l2").limit(k).select(["id"])
        if self.setting is not None:
            query = query.nprobes(50).refine_factor(self.setting)
        return query

    def search(self, q: np.ndarray, k: int, sel: int | None = None) -> list[int]:
        query = self._query(q, k)
        if sel is not None:
            query = query.where(f"sel < {sel}", prefilter=True)
        return rows(query.to_arrow().column("id").to_pylist())

    def search_batch(self, q: np.ndarray, k: int) -> list[list[int]]:
        t = self._query(q, k).to_arrow()
        out: list[list[int]] = [[] for _ in range(len(q))]
        for qi, i in zip(t.column("query_index").to_pylist(), t.column("id").to_pylist()):
            out[qi].append(int(i[1:]))
        return out

    def get(self, cat: str) -> int:
        return (
            self.tbl.search()
            .where(f"cat = '{cat}'")
            .select(["id", "sel", "cat"])
            .limit(None)
            .to_arrow()
            .num_rows
        )

    def disk_bytes(self) -> int:
        return dir_bytes(self.path)


class Usearch:
    """One usearch ``Index`` (f32, M 16, ef 100): the engine lakevec's indexes are built with,
    with nothing around it. No metadata, so no filtered workloads."""

    name = "usearch"
    stores = True
    curve = EF_CURVE
    default = 100
    knob = "ef_search"

    def create(self, path: str) -> None:
        from usearch.index import Index

        self.path = path
        self.index = Index(
            ndim=DIM, metric="l2sq", dtype="f32", connectivity=16, expansion_add=100, expansion_search=100
        )

    def open(self, path: str) -> None:
        from usearch.index import Index

        self.index = Index.restore(os.path.join(path, "index.usearch"), view=True)

    def prepare(self, ds, start: int, end: int):
        return np.arange(start, end), ds.vectors[start:end]

    def add(self, batch) -> None:
        self.index.add(*batch)

    def finish(self) -> None:
        self.index.save(os.path.join(self.path, "index.usearch"))

    def tune(self, setting) -> None:
        self.index.expansion_search = setting

    def search(self, q: np.ndarray, k: int, sel: int | None = None) -> list[int] | None:
        if sel is not None:
            return None
        return self.index.search(q, k).keys.tolist()

    def search_batch(self, q: np.ndarray, k: int) -> list[list[int]]:
        return self.index.search(q, k, threads=os.cpu_count() or 1).keys.tolist()

    def get(self, cat: str) -> None:
        return None

    def disk_bytes(self) -> int:
        return dir_bytes(self.path)


class Exact:
    """Brute force with numpy (BLAS): recall 1, the floor any index must beat."""

    name = "exact"
    stores = False  # nothing to ingest: the rows stay in the benchmark's arrays
    curve = ()
    default = None
    knob = ""

    def create(self, path: str) -> None:
        self.parts: list[np.ndarray] = []
        self.sel_parts: list[np.ndarray] = []

    def prepare(self, ds, start: int, end: int):
        return ds.vectors[start:end], ds.sel[start:end]

    def add(self, batch) -> None:
        self.parts.append(batch[0])
        self.sel_parts.append(batch[1])

    def finish(self) -> None:
        self.x = np.concatenate(self.parts)
        self.sel = np.concatenate(self.sel_parts)
        self.norms = (self.x**2).sum(1)
        self.parts = self.sel_parts = []

    def tune(self, setting) -> None:
        pass

    def _top(self, d: np.ndarray, k: int) -> np.ndarray:
        k = min(k, d.shape[-1])
        top = np.argpartition(d, k - 1, axis=-1)[..., :k]
        return np.take_along_axis(top, np.argsort(np.take_along_axis(d, top, -1), axis=-1), -1)

    def search(self, q: np.ndarray, k: int, sel: int | None = None) -> list[int]:
        if sel is None:
            return self._top(self.norms - 2 * (self.x @ q), k).tolist()
        keep = np.flatnonzero(self.sel < sel)
        return keep[self._top(self.norms[keep] - 2 * (self.x[keep] @ q), k)].tolist()

    def search_batch(self, q: np.ndarray, k: int) -> list[list[int]]:
        return self._top(self.norms[None, :] - 2 * (q @ self.x.T), k).tolist()

    def get(self, cat: str) -> None:
        return None

    def disk_bytes(self) -> None:
        return None


SYSTEMS = {cls.name: cls for cls in (Lakevec, ChromaAPI, LanceDB, Usearch, Exact)}


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
