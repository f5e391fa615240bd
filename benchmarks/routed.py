"""A cold remote query through index routes (``read/routed.py``): its recall, what it reads,
and the S3 cold open with and without routes, in one run.

The collection is built as the harness builds it (batches of 5,000 ``add`` calls, then
``wait_for_index``), or reused with ``--keep``. Recall: every index of the local collection is
searched through its route, at each of ``--shares`` (the share of its rows ranked per query), and the
answers compared with exact search; requests and bytes are what the route's ranged reads of
the index files would fetch. S3: the collection and a copy whose manifests name no route are
uploaded to moto's S3 server (``benchmarks/moto_ranges.py``), and fresh processes with empty
caches open each and answer one query, alternately (the harness's ``cold`` child: imports,
open, one query; the wall time is the whole process).

    python -m benchmarks routed                                   # clustered-1m
    python -m benchmarks routed --dataset clustered-100k --shares 0.05,0.1 --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, heading, write  # noqa: E402
from benchmarks.harness.datasets import CACHE, K, load  # noqa: E402

SHARES = (0.015625, 0.03125, 0.0625, 0.125)


def build(ds, path: Path) -> float:
    from benchmarks.harness.systems import Lakevec

    system = Lakevec()
    system.create(str(path))
    start = time.perf_counter()
    for a in range(0, ds.n, 5_000):
        system.add(system.prepare(ds, a, a + 5_000))
    system.finish()
    return time.perf_counter() - start


def recall_sweep(ds, path: Path, shares: list[float], queries: int) -> list[dict]:
    import lakevec
    import lakevec.read.routed as routed
    from lakevec.lake.route import Route

    col = lakevec.PersistentClient(str(path)).get_collection("bench", embedding_function=None)
    engine = col._engine
    snap = engine.snapshot()
    counts = {"requests": 0, "bytes": 0}

    def read(paths, starts, ends):
        counts["requests"] += len(paths)
        counts["bytes"] += sum(e - s for s, e in zip(starts, ends))
        return engine.storage.read_ranges(paths, starts, ends)

    routes = {e.index: e.index_route for e in snap.manifest.fragments if e.index}
    if None in routes.values():
        raise SystemExit(f"an index without a route: {routes}")
    loaded = {p: Route.from_bytes(engine.storage.read_bytes(engine.cache.path(r))) for p, r in routes.items()}
    hnsw = snap.manifest.config["hnsw"]
    # every index searched through its route, as a cold remote process does
    engine._open_indexes = lambda s: {  # type: ignore[method-assign]
        p: routed.RoutedIndex(
            [(r, engine.cache.path(p))], read, hnsw["space"], np.dtype(np.int8), hnsw["ef_search"], None
        )
        for p, r in loaded.items()
    }
    out = []
    saved = routed.ROUTE_SHARE, routed.ROUTE_ROWS, routed.ROUTE_MAX_SHARE
    for share in shares:
        routed.ROUTE_SHARE, routed.ROUTE_ROWS, routed.ROUTE_MAX_SHARE = share, 0, 1.0
        counts.update(requests=0, bytes=0)
        found, start = [], time.perf_counter()
        for q in ds.queries[:queries]:
            ids = col.query(query_embeddings=q[None], n_results=K, include=[])["ids"][0]
            found.append({int(i[1:]) for i in ids})
        seconds = time.perf_counter() - start
        truth = ds.truth["unfiltered"][:queries]
        recall = float(np.mean([len(f & set(t.tolist())) / K for f, t in zip(found, truth)]))
        out.append(
            {
                "share": share,
                "recall": recall,
                "requests_per_query": counts["requests"] / queries,
                "mb_per_query": counts["bytes"] / queries / 1e6,
                "local_ms_per_query": 1000 * seconds / queries,
            }
        )
        print(out[-1], flush=True)
    routed.ROUTE_SHARE, routed.ROUTE_ROWS, routed.ROUTE_MAX_SHARE = saved
    return out


def without_routes(path: Path, target: Path) -> None:
    """A copy of the collection whose manifests name no route (and without the route files)."""
    shutil.copytree(path, target)
    for route in target.rglob("*.route.npz"):
        route.unlink()
    for manifest in target.rglob("versions/v*.json"):
        doc = json.loads(manifest.read_text())
        for fragment in doc.get("fragments", []):
            fragment["index_route"] = None
        manifest.write_text(json.dumps(doc))


def cold_runs(ds, stores: dict[str, Path], runs: int) -> dict[str, dict]:
    from benchmarks.s3 import BUCKET, moto_s3, upload

    query_file = Path(tempfile.mkdtemp(prefix="routed-q-")) / "q.npy"
    np.save(query_file, ds.queries[:1])
    repo = Path(__file__).resolve().parent.parent
    out: dict[str, dict] = {name: {"wall_s": [], "in_process_s": []} for name in stores}
    with moto_s3() as (env, fs):
        for name, path in stores.items():
            upload(fs, path, f"{BUCKET}/{name}")
            for file in fs.find(f"{BUCKET}/{name}"):  # moto serves a first read slower; S3 does not
                fs.cat_file(file)
        for _ in range(runs):
            for name in stores:  # alternately: the VM's background work hits both alike
                cache = tempfile.mkdtemp(prefix="routed-cache-")
                start = time.perf_counter()
                child = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.harness",
                        "cold",
                        "lakevec",
                        f"s3://{BUCKET}/{name}",
                        str(query_file),
                    ],
                    capture_output=True,
                    text=True,
                    env=env | {"LAKEVEC_FILE_CACHE_DIR": cache},
                    cwd=str(repo),
                )
                wall = time.perf_counter() - start
                shutil.rmtree(cache, ignore_errors=True)
                if child.returncode:
                    raise RuntimeError(child.stderr[-3000:])
                out[name]["wall_s"].append(wall)
                out[name]["in_process_s"].append(
                    json.loads(child.stdout.strip().splitlines()[-1])["in_process_s"]
                )
                print(name, f"{wall:.2f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks routed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="clustered-1m")
    parser.add_argument(
        "--shares", default=",".join(str(r) for r in SHARES), help="shares of the rows ranked per query"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--keep", help="build the collection here, or reuse it if it exists")
    parser.add_argument(
        "--route-min-rows", type=int, help="write routes for smaller indexes too (a set under 131,072 rows)"
    )
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    ds = load(args.dataset, queries=args.queries, cache=Path(args.cache))
    result = header("routed", argv, dataset=args.dataset, rows=ds.n)
    work = Path(tempfile.mkdtemp(prefix="routed-"))
    path = Path(args.keep) if args.keep else work / "lakevec"
    if not path.exists():
        import lakevec.write.index as index_module

        saved = index_module.ROUTE_MIN_ROWS
        index_module.ROUTE_MIN_ROWS = args.route_min_rows or saved
        try:
            result["to_indexed_s"] = build(ds, path)
        finally:
            index_module.ROUTE_MIN_ROWS = saved
    manifest = max(path.rglob("versions/v*.json"))
    fragments = json.loads(manifest.read_text())["fragments"]
    result["indexes"] = len({f["index"] for f in fragments})
    result["route_mb"] = sum(f.stat().st_size for f in path.rglob("*.route.npz")) / 1e6
    result["disk_mb"] = dir_bytes(path) / 1e6
    result["sweep"] = recall_sweep(ds, path, [float(r) for r in args.shares.split(",")], args.queries)
    without_routes(path, work / "noroute")
    cold = cold_runs(ds, {"routes": path, "noroute": work / "noroute"}, args.cold_runs)
    result["cold"] = {
        name: {
            "wall_best_s": min(c["wall_s"]),
            "wall_median_s": float(np.median(c["wall_s"])),
            "in_process_best_s": min(c["in_process_s"]),
            "in_process_median_s": float(np.median(c["in_process_s"])),
            **c,
        }
        for name, c in cold.items()
    }
    shutil.rmtree(work, ignore_errors=True)

    lines = heading(f"Cold remote queries through index routes, {args.dataset}", result)
    lines += [
        f"{ds.n:,} rows in {result['indexes']} index(es); route files {result['route_mb']:.1f} MB of "
        f"{result['disk_mb']:,.0f} MB on disk. Recall@{K} over {args.queries} queries with every "
        "index searched through its route (local files; the requests and bytes are the ranged "
        "reads of the index files a remote process would make; the float32 re-rank as always).",
        "",
        "| share of the rows ranked | recall@10 | requests per query | MB per query | ms per query (local) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for s in result["sweep"]:
        lines.append(
            f"| {100 * s['share']:.2f} % | {s['recall']:.3f} | {s['requests_per_query']:.1f} | "
            f"{s['mb_per_query']:.1f} | {s['local_ms_per_query']:.1f} |"
        )
    lines += [
        "",
        f"S3 (moto on 127.0.0.1, same cores), a fresh process with an empty cache: imports, opens, "
        f"answers one query; {args.cold_runs} runs each, alternating.",
        "",
        "| collection | best s (whole process) | median s | best s (in process) | median s (in process) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in (("routes", "with routes"), ("noroute", "without routes (whole index copied first)")):
        c = result["cold"][name]
        lines.append(
            f"| {label} | {c['wall_best_s']:.2f} | {c['wall_median_s']:.2f} | "
            f"{c['in_process_best_s']:.2f} | {c['in_process_median_s']:.2f} |"
        )
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
