"""Query benchmark: lakevec vs chromadb vs raw usearch on the same data, in one run.

    python -m benchmarks query                       # 100,000 x 384, clustered and uniform
    python -m benchmarks query --n 5000 --queries 50 --datasets clustered --systems lakevec,usearch

Measures, per system: ingest until searchable with an index (lakevec: first add ->
wait_for_index; chromadb: add, which builds its HNSW inline; usearch: one Index.add), then
single-query latency (p50/p99), QPS and recall@10 against exact numpy search, unfiltered and
with filters of 25% (cat == "red") and 1% (a different `i` range per query) selectivity.
Writes benchmarks/results/<date>-<machine>-query.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import header, write  # noqa: E402
from benchmarks.harness.datasets import synthetic  # noqa: E402

CATS = np.array(["red", "green", "blue", "gray"])


def embeddings(n: int, dim: int, kind: str, seed: int) -> np.ndarray:
    """The harness's synthetic vectors (the same seeds give the same rows up to 100,000)."""
    return synthetic(kind, n, seed, dim)


def workloads(n: int, nq: int, seed: int = 3):
    """(name, per-query where clauses, per-query allowed-row masks)."""
    cats = CATS[np.arange(n) % 4]
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - n // 100, nq)
    width = max(1, n // 100)
    return [
        ("unfiltered", [None] * nq, [None] * nq),
        ("filter 25% (cat == red)", [{"cat": "red"}] * nq, [cats == "red"] * nq),
        (
            "filter 1% (i range)",
            [{"$and": [{"i": {"$gte": int(s)}}, {"i": {"$lt": int(s) + width}}]} for s in starts],
            [(np.arange(n) >= s) & (np.arange(n) < s + width) for s in starts],
        ),
    ]


def truth(x: np.ndarray, q: np.ndarray, mask, k: int) -> np.ndarray:
    d = ((x**2).sum(1)) - 2 * (x @ q)
    if mask is not None:
        d = np.where(mask, d, np.inf)
    return np.argsort(d)[:k]


class Lakevec:
    name = "lakevec"

    def __init__(self, path: str):
        import lakevec

        self.col = lakevec.PersistentClient(path).create_collection("bench", embedding_function=None)

    def ingest(self, ids, x, metas, batch):
        for s in range(0, len(ids), batch):
            self.col.add(ids=ids[s : s + batch], embeddings=x[s : s + batch], metadatas=metas[s : s + batch])
        self.col.wait_for_index()

    def search(self, q, k, where):
        return [
            int(i[3:])
            for i in self.col.query(query_embeddings=q[None], n_results=k, where=where, include=[])["ids"][0]
        ]


class Chroma(Lakevec):
    name = "chromadb"

    def __init__(self, path: str):
        import chromadb

        client = chromadb.PersistentClient(path, settings=chromadb.Settings(anonymized_telemetry=False))
        self.col = client.create_collection("bench", embedding_function=None)

    def ingest(self, ids, x, metas, batch):
        for s in range(0, len(ids), batch):
            self.col.add(ids=ids[s : s + batch], embeddings=x[s : s + batch], metadatas=metas[s : s + batch])


class Usearch:
    """One usearch Index over all vectors, Chroma's defaults (M 16, ef 100), float32; no filters."""

    name = "usearch"

    def __init__(self, path: str):
        from usearch.index import Index

        self.index = None
        self.Index = Index

    def ingest(self, ids, x, metas, batch):
        self.index = self.Index(
            ndim=x.shape[1],
            metric="l2sq",
            dtype="f32",
            connectivity=16,
            expansion_add=100,
            expansion_search=100,
        )
        self.index.add(np.arange(len(x)), x)

    def search(self, q, k, where):
        if where is not None:
            return None
        return self.index.search(q, k).keys.tolist()


SYSTEMS = {"lakevec": Lakevec, "chromadb": Chroma, "usearch": Usearch}


def run(system_cls, x, queries, work, k, batch, reps):
    n = len(x)
    ids = [f"id-{i}" for i in range(n)]
    metas = [{"cat": str(CATS[i % 4]), "i": i} for i in range(n)]
    path = tempfile.mkdtemp(prefix="bench-q-")
    try:
        system = system_cls(path)
        t0 = time.perf_counter()
        system.ingest(ids, x, metas, batch)
        ingest_s = time.perf_counter() - t0
        out = {"ingest_to_indexed_s": ingest_s, "ingest_vectors_per_s": n / ingest_s, "workloads": {}}
        for name, wheres, masks in work:
            if system.search(queries[0], k, wheres[0]) is None:
                continue
            # ground truth first, so the timed loop runs searches back to back for every system
            expected = [set(truth(x, q, m, k).tolist()) for q, m in zip(queries, masks)]
            for i in range(min(10, len(queries))):  # warm-up
                system.search(queries[i], k, wheres[i])
            best = None
            for _ in range(reps):
                lat, results = [], []
                for q, w in zip(queries, wheres):
                    t = time.perf_counter()
                    results.append(system.search(q, k, w))
                    lat.append(time.perf_counter() - t)
                hits = sum(len(set(got) & truth_set) / k for got, truth_set in zip(results, expected))
                lat_ms = 1000 * np.array(lat)
                r = {
                    "p50_ms": float(np.median(lat_ms)),
                    "p99_ms": float(np.percentile(lat_ms, 99)),
                    "qps": float(len(lat) / lat_ms.sum() * 1000),
                    "recall_at_10": hits / len(queries),
                }
                if best is None or r["p50_ms"] < best["p50_ms"]:
                    best = r
            out["workloads"][name] = best
        return out
    finally:
        shutil.rmtree(path, ignore_errors=True)


def markdown(result: dict) -> str:
    lines = [
        f"# Query benchmark, {result['date']} on {result['machine']['node']}",
        "",
        f"`{result['command']}`: {result['n']:,} x {result['dim']} float32, k={result['k']}, "
        f"{result['queries']} single queries, best of {result['reps']} repetitions, {result['machine']['cpus']} cores.",
        "",
    ]
    for ds, systems in result["datasets"].items():
        lines += [
            f"## {ds}",
            "",
            "| system | workload | recall@10 | p50 ms | p99 ms | QPS | ingest→indexed s |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for sysname, r in systems.items():
            for wl, m in r["workloads"].items():
                lines.append(
                    f"| {sysname} | {wl} | {m['recall_at_10']:.3f} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | "
                    f"{m['qps']:,.0f} | {r['ingest_to_indexed_s']:.1f} |"
                )
        lake, chroma, raw = (systems.get(s) for s in ("lakevec", "chromadb", "usearch"))
        if lake:
            lines.append("")
            for wl, m in lake["workloads"].items():
                parts = []
                if chroma and wl in chroma["workloads"]:
                    parts.append(f"QPS {m['qps'] / chroma['workloads'][wl]['qps']:.1f}x chromadb")
                if raw and wl in raw["workloads"]:
                    parts.append(
                        f"p50 latency {m['p50_ms'] / raw['workloads'][wl]['p50_ms']:.2f}x raw usearch"
                    )
                if parts:
                    lines.append(f"- {wl}: " + ", ".join(parts))
            if chroma:
                ratio = lake["ingest_vectors_per_s"] / chroma["ingest_vectors_per_s"]
                lines.append(f"- ingest until indexed: {ratio:.1f}x chromadb's vectors/s")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--datasets", default="clustered,uniform")
    parser.add_argument("--systems", default="lakevec,chromadb,usearch")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    result = header("query", argv, n=args.n, dim=args.dim, k=args.k, queries=args.queries, reps=args.reps)
    result["datasets"] = {}
    for ds in args.datasets.split(","):
        x = embeddings(args.n, args.dim, ds, seed=0)
        queries = embeddings(args.queries, args.dim, ds, seed=1)
        work = workloads(args.n, args.queries)
        result["datasets"][ds] = {}
        for name in args.systems.split(","):
            print(f"{ds}: {name} ...", flush=True)
            result["datasets"][ds][name] = run(SYSTEMS[name], x, queries, work, args.k, args.batch, args.reps)
    write(result, args.out, markdown(result))
    return result


if __name__ == "__main__":
    main()
