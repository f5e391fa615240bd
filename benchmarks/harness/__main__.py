"""Entry point: ``python -m benchmarks harness [--full] [--datasets ...] [--systems ...]``."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.common import header  # noqa: E402
from benchmarks.harness import datasets, measure, report  # noqa: E402
from benchmarks.harness.systems import remove  # noqa: E402

QUICK = {"datasets": "clustered-10k,uniform-10k,text-10k,clustered-100k", "queries": 200, "reps": 3}
FULL = {
    "datasets": "clustered-10k,clustered-100k,clustered-1m,uniform-100k,text-40000",
    "queries": 200,
    "reps": 3,
}
SYSTEMS = "lakevec,chromadb,lancedb,usearch,exact"
COLD_RUNS = 3


def child(argv: list[str], env: dict | None = None) -> dict:
    """Run ``argv`` of this module in a fresh process; its last stdout line is JSON."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    if out.returncode:
        raise RuntimeError(f"{argv} exited with {out.returncode}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_open(system: str, path: str, query_file: str, env: dict | None = None) -> dict:
    """Wall time of a fresh process that imports the system, opens the stored collection and
    answers one query, best and median of ``COLD_RUNS``."""
    walls, inner = [], []
    for _ in range(COLD_RUNS):
        t = time.perf_counter()
        inner.append(child(["cold", system, path, query_file], env)["in_process_s"])
        walls.append(time.perf_counter() - t)
    return {"best_s": min(walls), "median_s": float(np.median(walls)), "in_process_best_s": min(inner)}


def s3_cold_open(system: str, path: str, query_file: str) -> dict:
    """The same stored collection uploaded to moto's S3 server on 127.0.0.1, opened by a fresh
    process with an empty cache."""
    from benchmarks.s3 import BUCKET, moto_s3, upload

    with moto_s3() as (env, fs):
        upload(fs, Path(path), f"{BUCKET}/{system}")
        for file in fs.find(f"{BUCKET}/{system}"):  # moto serves a first read slower; S3 does not
            fs.cat_file(file)
        walls = []
        for _ in range(COLD_RUNS):
            cache = tempfile.mkdtemp(prefix="bench-cache-")
            t = time.perf_counter()
            child(
                ["cold", system, f"s3://{BUCKET}/{system}", query_file],
                env | {"LAKEVEC_FILE_CACHE_DIR": cache},
            )
            walls.append(time.perf_counter() - t)
            remove(cache)
    return {"best_s": min(walls), "median_s": float(np.median(walls))}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "measure":
        system, dataset, path, queries, reps, batch = argv[1:]
        print(json.dumps(measure.run(system, dataset, path, int(queries), int(reps), int(batch))))
        return {}
    if argv and argv[0] == "cold":
        print(json.dumps(measure.cold(*argv[1:])))
        return {}
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="10k/100k/1M, uniform, text, S3 cold open")
    parser.add_argument("--datasets", help="comma-separated, e.g. clustered-10k,text-10k")
    parser.add_argument("--systems", default=SYSTEMS)
    parser.add_argument("--queries", type=int)
    parser.add_argument("--reps", type=int)
    parser.add_argument("--batch", type=int, default=5_000, help="rows per add call")
    parser.add_argument("--s3", action="store_true", help="cold open from S3 (moto) on the largest dataset")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "results"))
    parser.add_argument("--suffix", help="appended to the result files' names, e.g. -1m")
    parser.add_argument("--cache", default=str(datasets.CACHE), help="datasets and ground truth")
    args = parser.parse_args(argv)
    preset = FULL if args.full else QUICK
    names = (args.datasets or preset["datasets"]).split(",")
    queries, reps = args.queries or preset["queries"], args.reps or preset["reps"]
    systems = args.systems.split(",")
    result = header("harness", argv, queries=queries, reps=reps, batch=args.batch, systems=systems)
    result["datasets"] = {}
    env = dict(os.environ, LAKEVEC_BENCH_CACHE=args.cache)
    largest = max(names, key=lambda name: datasets.load(name, queries, Path(args.cache)).n)
    for name in names:
        ds = datasets.load(name, queries, Path(args.cache))  # built and cached before any timing
        query_file = str(Path(args.cache) / f"{name}-queries.npy")
        result["datasets"][name] = {"n": ds.n, "systems": {}}
        del ds
        for system in systems:
            print(f"{name}: {system} ...", flush=True)
            path = tempfile.mkdtemp(prefix=f"bench-{system}-")
            try:
                try:
                    r = child(["measure", system, name, path, str(queries), str(reps), str(args.batch)], env)
                except RuntimeError as e:  # one system failing (killed, out of memory) ends only its row
                    result["datasets"][name]["failed"] = result["datasets"][name].get("failed", {}) | {
                        system: str(e)[-500:]
                    }
                    continue
                if system != "exact":
                    r["cold_open"] = cold_open(system, path, query_file, env)
                if args.s3 and name == largest and system in ("lakevec", "lancedb"):
                    try:
                        r["s3_cold_open"] = s3_cold_open(system, path, query_file)
                    except Exception as e:  # a peer without a working S3 path is reported, not fatal
                        r["s3_cold_open"] = {"error": str(e).strip().splitlines()[-1][:300]}
                result["datasets"][name]["systems"][system] = r
            finally:
                remove(path)
    suffix = args.suffix or ("-full" if args.full else "")
    stem = Path(args.out) / f"{result['date']}-{platform.node() or 'machine'}{suffix}"
    report.write(result, stem)
    return result


if __name__ == "__main__":
    main()
