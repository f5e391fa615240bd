"""1M rows through the Ray sink and Ray index tasks, against ``add_table`` and
``wait_for_index`` in one process, on this machine: what the cluster's machinery costs where
there is no second machine to pay it back.

    python -m benchmarks ray                                   # clustered-1m, 2 CPUs
    python -m benchmarks ray --dataset clustered-10k --out /tmp/x   # a smoke run

The input is the dataset with an ``id`` column, as 16 Parquet files (Ray reads files in
parallel); both paths read the same files. Ray runs as a local cluster of ``--cpus`` CPUs.
Each write task and index task is timed where it runs; the plan for 100M rows scales those
per-task costs (see the report's last section).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, heading, write  # noqa: E402
from benchmarks.harness.datasets import CACHE, K, load  # noqa: E402

FILES = 16
PLAN_ROWS = 100_000_000
PLAN_NODES = (4, 16, 64)
PLAN_CORES = 16  # per node


def ingest_files(name: str, cache: Path, out: Path) -> Path:
    """The dataset with ids, as FILES Parquet files under ``out`` (built once)."""
    target = out / f"{name}-ids.parquet"
    if target.exists():
        return target
    table = pq.read_table(cache / f"{name}.parquet")
    table = table.add_column(0, "id", pa.array([f"id{i}" for i in range(table.num_rows)]))
    tmp = out / f"{name}-ids.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    size = -(-table.num_rows // FILES)
    for f in range(FILES):
        pq.write_table(table.slice(f * size, size), tmp / f"part-{f:02d}.parquet", row_group_size=65_536)
    tmp.rename(target)
    return target


def recall(collection, ds, queries: int) -> tuple[float, float]:
    """recall@10 and QPS of single ``collection.query`` calls against the dataset's truth."""
    probes = ds.queries[:queries]
    for q in probes[:20]:
        collection.query(query_embeddings=q[None], n_results=K, include=[])
    start = time.perf_counter()
    found = [collection.query(query_embeddings=q[None], n_results=K, include=[])["ids"][0] for q in probes]
    qps = len(probes) / (time.perf_counter() - start)
    truth = ds.truth["unfiltered"]
    hits = [len({int(i[2:]) for i in got} & set(t.tolist())) / K for got, t in zip(found, truth)]
    return float(np.mean(hits)), qps


def timed_sink_class():
    import lakevec.ray as lr

    class TimedSink(lr.CollectionSink):
        """The sink, with each write task's seconds and the driver's commit timed."""

        def write(self, blocks, ctx):
            start = time.perf_counter()
            staged = super().write(blocks, ctx)
            rows = sum(s.entry.rows for s in staged)
            return {"seconds": time.perf_counter() - start, "rows": rows, "staged": staged}

        def on_write_complete(self, write_result):
            self.tasks = [{"seconds": r["seconds"], "rows": r["rows"]} for r in write_result.write_returns]
            write_result.write_returns = [r["staged"] for r in write_result.write_returns]
            start = time.perf_counter()
            super().on_write_complete(write_result)
            self.commit_s = time.perf_counter() - start

    return TimedSink


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ray", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="clustered-1m")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--work", default=None, help="where the collections go (a temporary directory)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    saved = os.environ.get("LAKEVEC_AUTO_INDEX")
    os.environ["LAKEVEC_AUTO_INDEX"] = "0"  # both paths index when asked, not in the background
    try:
        return run(args, argv)
    finally:
        if saved is None:
            os.environ.pop("LAKEVEC_AUTO_INDEX", None)
        else:
            os.environ["LAKEVEC_AUTO_INDEX"] = saved


def run(args: argparse.Namespace, argv: list[str] | None) -> dict:
    import ray

    import lakevec
    import lakevec.ray as lr

    ds = load(args.dataset, queries=args.queries, cache=Path(args.cache))
    work = Path(args.work or tempfile.mkdtemp(prefix="lakevec-ray-"))
    files = ingest_files(args.dataset, Path(args.cache), work)
    result = header("ray", argv, dataset=args.dataset, rows=ds.n, cpus=args.cpus, queries=args.queries)

    # one process: add_table, then wait_for_index
    local_root = work / "local"
    shutil.rmtree(local_root, ignore_errors=True)
    local = lakevec.PersistentClient(str(local_root)).create_collection("bench", embedding_function=None)
    start = time.perf_counter()
    local.add_table(str(files))
    add_s = time.perf_counter() - start
    start = time.perf_counter()
    local.wait_for_index()
    index_s = time.perf_counter() - start
    r, qps = recall(local, ds, args.queries)
    result["local"] = {
        "ingest_s": add_s,
        "index_s": index_s,
        "recall": r,
        "qps": qps,
        "disk_mb": dir_bytes(local_root) / 1e6,
    }
    print(
        f"local: add_table {add_s:.1f} s, wait_for_index {index_s:.1f} s, recall {r:.3f}, {qps:,.0f} QPS",
        flush=True,
    )

    # Ray: the sink, then index tasks
    started_ray = not ray.is_initialized()
    if started_ray:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")) if p
        )
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        init_s = time.perf_counter() - start
    else:
        init_s = 0.0
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray_root = work / "ray"
    shutil.rmtree(ray_root, ignore_errors=True)
    sink = timed_sink_class()(str(ray_root), "bench")
    start = time.perf_counter()
    ray.data.read_parquet(str(files)).write_datasink(sink)
    sink_s = time.perf_counter() - start
    collection = lakevec.PersistentClient(str(ray_root)).get_collection("bench")
    start = time.perf_counter()
    built = lr.build_indexes(collection)
    build_s = time.perf_counter() - start
    r, qps = recall(collection, ds, args.queries)
    queries = ds.queries[: args.queries]
    batch = {}
    for engine in ("local", "ray"):
        lr.query_batch(collection, queries[:10], K, engine=engine)  # warm: workers open the indexes
        start = time.perf_counter()
        lr.query_batch(collection, queries, K, engine=engine)
        batch[engine] = len(queries) / (time.perf_counter() - start)
    result["ray"] = {
        "init_s": init_s,
        "ingest_s": sink_s,
        "commit_s": sink.commit_s,
        "write_tasks": sink.tasks,
        "index_s": build_s,
        "index_tasks": built["tasks"],
        "recall": r,
        "qps": qps,
        "batch_qps": batch,
        "disk_mb": dir_bytes(ray_root) / 1e6,
    }
    print(
        f"ray: init {init_s:.1f} s, sink {sink_s:.1f} s (commit {sink.commit_s:.2f} s, {len(sink.tasks)} tasks), "
        f"index {build_s:.1f} s ({built['indexes']} tasks), recall {r:.3f}, {qps:,.0f} QPS, "
        f"batch QPS local {batch['local']:,.0f} ray {batch['ray']:,.0f}",
        flush=True,
    )
    if started_ray:
        ray.shutdown()
    result["plan"] = plan(result)
    write(result, args.out, report(result))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


def plan(result: dict) -> dict:
    """100M rows on N nodes of PLAN_CORES cores, from this run's per-task costs: CPU-seconds
    per million rows for writing and for indexing (index build cost per row grows with the
    log of the tier's size: tiers of 2M rows are assumed to cost log(2M)/log(tier) per row
    more than the measured ones), and the driver's commit, which reads every staged id."""
    ray = result["ray"]
    write_rows = sum(t["rows"] for t in ray["write_tasks"]) or 1
    write_cpu_per_m = sum(t["seconds"] for t in ray["write_tasks"]) / write_rows * 1e6
    index_rows = sum(t["rows"] for t in ray["index_tasks"]) or 1
    tier = index_rows / max(1, len(ray["index_tasks"]))
    growth = math.log(2_000_000) / math.log(max(tier, 2))
    index_cpu_per_m = sum(t["seconds"] for t in ray["index_tasks"]) / index_rows * 1e6 * growth
    commit_per_m = ray["commit_s"] / write_rows * 1e6
    millions = PLAN_ROWS / 1e6
    rows = []
    for nodes in PLAN_NODES:
        cores = nodes * PLAN_CORES
        rows.append(
            {
                "nodes": nodes,
                "write_s": millions * write_cpu_per_m / cores,
                "index_s": millions * index_cpu_per_m / cores,
                "commit_s": millions * commit_per_m,
            }
        )
    return {
        "write_cpu_s_per_m": write_cpu_per_m,
        "index_cpu_s_per_m": index_cpu_per_m,
        "commit_s_per_m": commit_per_m,
        "growth": growth,
        "nodes": rows,
    }


def report(result: dict) -> str:
    local, ray, p = result["local"], result["ray"], result["plan"]
    lines = heading(f"Ray sink and index tasks vs one process, {result['dataset']}", result)
    lines += [
        "| path | ingest s | index s | total s | recall@10 | QPS | disk MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| add_table + wait_for_index | {local['ingest_s']:.1f} | {local['index_s']:.1f} | "
        f"{local['ingest_s'] + local['index_s']:.1f} | {local['recall']:.3f} | {local['qps']:,.0f} | {local['disk_mb']:,.0f} |",
        f"| Ray sink + build_indexes | {ray['ingest_s']:.1f} | {ray['index_s']:.1f} | "
        f"{ray['ingest_s'] + ray['index_s']:.1f} | {ray['recall']:.3f} | {ray['qps']:,.0f} | {ray['disk_mb']:,.0f} |",
        "",
        f"- Ray: `ray.init` {ray['init_s']:.1f} s (not in the totals); the sink's one commit "
        f"{ray['commit_s']:.2f} s; {len(ray['write_tasks'])} write tasks, {len(ray['index_tasks'])} index tasks.",
        f"- Ray over one process: ingest {ray['ingest_s'] / local['ingest_s']:.2f}×, index "
        f"{ray['index_s'] / local['index_s']:.2f}×, total "
        f"{(ray['ingest_s'] + ray['index_s']) / (local['ingest_s'] + local['index_s']):.2f}× the time.",
        f"- Batch query of {result['queries']} queries: "
        f"local fan-out {ray['batch_qps']['local']:,.0f} QPS, Ray {ray['batch_qps']['ray']:,.0f} QPS.",
        "",
        "Per task (seconds where the task ran):",
        "",
        "| task | count | rows each (median) | seconds each (median) | CPU-s per 1M rows |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, tasks in (("write", ray["write_tasks"]), ("index tier", ray["index_tasks"])):
        if tasks:
            rows = sum(t["rows"] for t in tasks) or 1
            lines.append(
                f"| {label} | {len(tasks)} | {np.median([t['rows'] for t in tasks]):,.0f} | "
                f"{np.median([t['seconds'] for t in tasks]):.2f} | {sum(t['seconds'] for t in tasks) / rows * 1e6:.1f} |"
            )
    lines += [
        "",
        f"## Plan: {PLAN_ROWS / 1e6:.0f}M rows on N nodes of {PLAN_CORES} cores",
        "",
        f"From the costs above: writing {p['write_cpu_s_per_m']:.1f} CPU-s per 1M rows; indexing "
        f"{p['index_cpu_s_per_m']:.1f} CPU-s per 1M rows in tiers of 2M (the measured cost × "
        f"{p['growth']:.2f} for the larger tiers); the driver's commit {p['commit_s_per_m']:.2f} s per 1M "
        "rows (it reads every staged id to skip existing and repeated ones), which does not shrink with N.",
        "",
        "| nodes | write s | index s | commit s | total s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in p["nodes"]:
        total = row["write_s"] + row["index_s"] + row["commit_s"]
        lines.append(
            f"| {row['nodes']} | {row['write_s']:,.0f} | {row['index_s']:,.0f} | {row['commit_s']:,.0f} | {total:,.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
