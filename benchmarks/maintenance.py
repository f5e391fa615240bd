"""Many small writes, then compaction and vacuum.

    python -m benchmarks maintenance                  # 1,000,000 x 384 in batches of 1,000
    python -m benchmarks maintenance --n 5000 --out /tmp/x   # a smoke run

Ingests clustered 384-d vectors batch by batch with the automatic policy on (small fragments
merged, the background indexer folding), recording every batch's time; then measures query QPS
(single queries, n_results=10) at the end of the ingest, after ``wait_for_index()``, and after one
full ``compact()``; then deletes half the rows, vacuums, and compares the bytes on disk with a
fresh load of the remaining rows. Writes benchmarks/results/<date>-<machine>-maintenance.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, heading, write  # noqa: E402
from benchmarks.harness.datasets import synthetic  # noqa: E402


def qps(col, queries: np.ndarray) -> float:
    col.query(query_embeddings=queries[:1], n_results=10)  # warm
    start = time.perf_counter()
    for q in queries:
        col.query(query_embeddings=q[None], n_results=10)
    return len(queries) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    import lakevec

    result = header("maintenance", argv, n=args.n, dim=args.dim, batch=args.batch)
    tmp = Path(tempfile.mkdtemp(prefix="lakevec-maint-"))
    vectors = synthetic("clustered", args.n + args.queries, 0, args.dim)
    queries = vectors[args.n :]
    try:
        root = tmp / "root"
        col = lakevec.PersistentClient(str(root)).create_collection("bench", embedding_function=None)
        times = []
        for start in range(0, args.n, args.batch):
            m = min(args.batch, args.n - start)
            emb = vectors[start : start + m]
            ids = [f"id{i}" for i in range(start, start + m)]
            t = time.perf_counter()
            col.add(ids=ids, embeddings=emb, metadatas=[{"b": start // args.batch}] * m)
            times.append(time.perf_counter() - t)
        tenth = max(1, len(times) // 10)
        first, last = float(np.median(times[:tenth])), float(np.median(times[-tenth:]))
        result["ingest"] = {
            "seconds": round(sum(times), 2),
            "vectors_per_s": round(args.n / sum(times)),
            "first_tenth_median_batch_ms": round(first * 1000, 2),
            "last_tenth_median_batch_ms": round(last * 1000, 2),
            "last_over_first": round(last / first, 2),
            "max_batch_ms": round(max(times) * 1000, 1),
            "stats_after_ingest": col.stats(),
        }
        result["qps_end_of_ingest"] = round(qps(col, queries), 1)
        t = time.perf_counter()
        col.wait_for_index()
        result["index_catch_up_s"] = round(time.perf_counter() - t, 2)
        result["qps_indexed"] = round(qps(col, queries), 1)
        t = time.perf_counter()
        result["compact_report"] = col.compact()
        result["compact_s"] = round(time.perf_counter() - t, 2)
        result["qps_after_compact"] = round(qps(col, queries), 1)
        result["stats_after_compact"] = col.stats()

        # delete half, vacuum, compare with a fresh load of what remains
        col.delete(where={"b": {"$in": list(range(0, args.n // args.batch + 1, 2))}})
        result["bytes_after_delete"] = dir_bytes(root)
        col.compact()
        col.vacuum(older_than=timedelta(0))
        result["bytes_after_compact_vacuum"] = dir_bytes(root)
        remaining = col.get(include=["embeddings", "metadatas"])
        fresh_root = tmp / "fresh"
        fresh = lakevec.PersistentClient(str(fresh_root)).create_collection("bench", embedding_function=None)
        for s in range(0, len(remaining["ids"]), 50_000):
            fresh.add(
                ids=remaining["ids"][s : s + 50_000],
                embeddings=remaining["embeddings"][s : s + 50_000],
                metadatas=remaining["metadatas"][s : s + 50_000],
            )
        fresh.wait_for_index()
        fresh.compact()
        fresh.vacuum(older_than=timedelta(0))
        result["bytes_fresh_load"] = dir_bytes(fresh_root)
        result["disk_ratio_to_fresh"] = round(
            result["bytes_after_compact_vacuum"] / result["bytes_fresh_load"], 3
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    ing = result["ingest"]
    lines = [
        *heading(
            f"Many small writes, compaction and vacuum: {args.n:,} x {args.dim} in batches of {args.batch:,}",
            result,
        ),
        "| measure | value |",
        "|---|---:|",
        f"| ingest vectors/s (add returns durable) | {ing['vectors_per_s']:,} |",
        f"| batch time, median of first 10% | {ing['first_tenth_median_batch_ms']} ms |",
        f"| batch time, median of last 10% | {ing['last_tenth_median_batch_ms']} ms |",
        f"| last / first | {ing['last_over_first']}x |",
        f"| slowest batch | {ing['max_batch_ms']} ms |",
        f"| fragments / unindexed at end of ingest | {ing['stats_after_ingest']['fragments']} / "
        f"{ing['stats_after_ingest']['unindexed_fragments']} |",
        f"| query QPS at end of ingest | {result['qps_end_of_ingest']} |",
        f"| index catch-up after ingest | {result['index_catch_up_s']} s |",
        f"| query QPS indexed | {result['qps_indexed']} |",
        f"| compact() | {result['compact_s']} s |",
        f"| query QPS after compact | {result['qps_after_compact']} |",
        f"| disk after deleting half | {result['bytes_after_delete'] / 1e6:,.0f} MB |",
        f"| disk after compact + vacuum | {result['bytes_after_compact_vacuum'] / 1e6:,.0f} MB |",
        f"| disk of a fresh load of the same rows | {result['bytes_fresh_load'] / 1e6:,.0f} MB |",
        f"| ratio to fresh load | {result['disk_ratio_to_fresh']}x |",
    ]
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
