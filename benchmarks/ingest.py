"""Ingest and filtered-get benchmark: lakevec against chromadb on the same data, in one run.

    python -m benchmarks ingest                 # 100,000 x 384, batches of 5,000 (the issue's setting)
    python -m benchmarks ingest --n 2000 --systems lakevec --out /tmp/x   # a smoke run

Writes benchmarks/results/<date>-<machine>-ingest.{json,md}: every figure, versions, the command.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, write  # noqa: E402
from benchmarks.harness.datasets import synthetic  # noqa: E402

FILTERS = {
    "category == c3 (10%)": {"category": "c3"},
    "year >= 2020 and flag (≈12%)": {"$and": [{"year": {"$gte": 2020}}, {"flag": True}]},
    "score < 0.01 (1%)": {"score": {"$lt": 0.01}},
}


def make_data(n: int, dim: int, seed: int = 0):
    """Clustered unit vectors (like text embeddings) and small typed metadata."""
    emb = synthetic("clustered", n, seed, dim)
    rng = np.random.default_rng(seed + 1)
    ids = [f"doc-{i}" for i in range(n)]
    cat = rng.integers(0, 10, n)
    year = rng.integers(2000, 2025, n)
    score = rng.random(n)
    flag = rng.random(n) < 0.6
    metas = [
        {"category": f"c{c}", "year": int(y), "score": float(s), "flag": bool(f)}
        for c, y, s, f in zip(cat, year, score, flag)
    ]
    docs = [f"document {i} in category c{c}" for i, c in enumerate(cat)]
    return ids, emb, metas, docs


def open_collection(system: str, path: str):
    if system == "lakevec":
        import lakevec

        return lakevec.PersistentClient(path).create_collection("bench", embedding_function=None)
    import chromadb

    client = chromadb.PersistentClient(path, settings=chromadb.Settings(anonymized_telemetry=False))
    return client.create_collection("bench", embedding_function=None)


def run_system(system: str, data, batch: int, get_reps: int) -> dict:
    ids, emb, metas, docs = data
    path = tempfile.mkdtemp(prefix=f"bench-{system}-")
    try:
        col = open_collection(system, path)
        times = []
        for start in range(0, len(ids), batch):
            end = start + batch
            t0 = time.perf_counter()
            col.add(
                ids=ids[start:end],
                embeddings=emb[start:end],
                metadatas=metas[start:end],
                documents=docs[start:end],
            )
            times.append(time.perf_counter() - t0)
        total = sum(times)
        assert col.count() == len(ids)
        gets = {}
        for name, where in FILTERS.items():
            col.get(where=where, include=[])  # warm-up
            samples = []
            for _ in range(get_reps):
                t0 = time.perf_counter()
                res = col.get(where=where, include=["metadatas"])
                samples.append(time.perf_counter() - t0)
            gets[name] = {
                "rows": len(res["ids"]),
                "p50_ms": 1000 * statistics.median(samples),
                "min_ms": 1000 * min(samples),
            }
        return {
            "vectors_per_s": len(ids) / total,
            "total_s": total,
            "first_batch_s": times[0],
            "second_batch_s": times[1] if len(times) > 1 else None,
            "last_batch_s": times[-1],
            "last_over_first": times[-1] / times[0],
            "batch_s": times,
            "get_where": gets,
            "disk_bytes": dir_bytes(path),
        }
    finally:
        shutil.rmtree(path, ignore_errors=True)


def markdown(result: dict) -> str:
    sysres = result["systems"]
    lines = [
        f"# Ingest benchmark, {result['date']} on {result['machine']['node']}",
        "",
        f"`{result['command']}`: {result['n']:,} x {result['dim']} float32, batches of {result['batch']:,}, "
        f"{result['machine']['cpus']} cores.",
        "",
        "| system | vectors/s | total s | first batch s | last batch s | last/first | disk MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in sysres.items():
        lines.append(
            f"| {name} | {r['vectors_per_s']:,.0f} | {r['total_s']:.2f} | {r['first_batch_s']:.3f} | "
            f"{r['last_batch_s']:.3f} | {r['last_over_first']:.2f} | {r['disk_bytes'] / 1e6:.0f} |"
        )
    if "ratio_vectors_per_s" in result:
        lines += ["", f"lakevec / chromadb ingest throughput: **{result['ratio_vectors_per_s']:.1f}x**"]
    lines += [
        "",
        "`get(where=..., include=['metadatas'])` on the full collection (median of repetitions):",
        "",
    ]
    names = list(sysres)
    lines.append("| filter | rows | " + " | ".join(f"{n} p50 ms" for n in names) + " |")
    lines.append("|---|---:|" + "---:|" * len(names))
    for f in FILTERS:
        first = sysres[names[0]]["get_where"][f]
        cells = " | ".join(f"{sysres[n]['get_where'][f]['p50_ms']:.1f}" for n in names)
        lines.append(f"| {f} | {first['rows']:,} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--get-reps", type=int, default=20)
    parser.add_argument("--systems", default="lakevec,chromadb")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    data = make_data(args.n, args.dim)
    result = header("ingest", argv, n=args.n, dim=args.dim, batch=args.batch)
    result["systems"] = {}
    for system in args.systems.split(","):
        print(f"running {system} ...", flush=True)
        result["systems"][system] = run_system(system, data, args.batch, args.get_reps)
    s = result["systems"]
    if "lakevec" in s and "chromadb" in s:
        result["ratio_vectors_per_s"] = s["lakevec"]["vectors_per_s"] / s["chromadb"]["vectors_per_s"]
    write(result, args.out, markdown(result))
    return result


if __name__ == "__main__":
    main()
